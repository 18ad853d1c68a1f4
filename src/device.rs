//! Choosing a backend at run time: `--device auto|flex|ndarray|wgpu`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A backend choice, parsed from `auto`, `flex`, `ndarray` or `wgpu` (case-insensitive).
///
/// ```
/// use fastburn::device::DeviceChoice;
/// let choice: DeviceChoice = "FLEX".parse()?;
/// assert_eq!(choice, DeviceChoice::Flex);
/// assert!("cuda".parse::<DeviceChoice>().is_err());
/// # #[cfg(feature = "flex")]
/// assert_eq!(choice.device()?, burn::tensor::Device::flex());
/// # Ok::<(), fastburn::device::DeviceError>(())
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// wgpu when compiled in and a GPU adapter answers, else flex, else ndarray.
    #[default]
    Auto,
    /// Burn's pure-Rust CPU backend (feature `flex`).
    Flex,
    /// Burn's ndarray CPU backend (feature `ndarray`).
    NdArray,
    /// wgpu (feature `wgpu`).
    Wgpu,
}

/// Why a device could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The name is not one of `auto`, `flex`, `ndarray`, `wgpu`.
    #[error("unknown device `{value}` (expected auto, flex, ndarray or wgpu)")]
    Unknown {
        /// What was given.
        value: String,
    },
    /// The backend was not compiled in.
    #[error("the `{backend}` backend is not compiled in: rebuild with `--features {backend}`")]
    NotCompiled {
        /// The backend's feature name.
        backend: &'static str,
    },
    /// No backend at all is compiled in.
    #[error("no backend is compiled in: enable one of the features flex, ndarray, wgpu")]
    NoBackend,
    /// wgpu found no usable adapter.
    #[error("wgpu found no usable adapter: {message}")]
    NoAdapter {
        /// What wgpu reported.
        message: String,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "flex" => Ok(DeviceChoice::Flex),
            "ndarray" => Ok(DeviceChoice::NdArray),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            _ => Err(DeviceError::Unknown {
                value: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Flex => "flex",
            DeviceChoice::NdArray => "ndarray",
            DeviceChoice::Wgpu => "wgpu",
        })
    }
}

impl DeviceChoice {
    /// The backends compiled into this build, in `auto`'s order of preference.
    pub fn compiled() -> Vec<DeviceChoice> {
        let mut v = Vec::new();
        if cfg!(feature = "wgpu") {
            v.push(DeviceChoice::Wgpu);
        }
        if cfg!(feature = "flex") {
            v.push(DeviceChoice::Flex);
        }
        if cfg!(feature = "ndarray") {
            v.push(DeviceChoice::NdArray);
        }
        v
    }

    /// The backend `device` runs on, with or without autodiff: `Flex`, `NdArray` or `Wgpu`
    /// (never `Auto`; a device that is neither flex nor ndarray is reported as `Wgpu`, the
    /// only other backend fastburn compiles in).
    ///
    /// ```
    /// # #[cfg(feature = "flex")] {
    /// use fastburn::device::DeviceChoice;
    /// let device = burn::tensor::Device::flex();
    /// assert_eq!(DeviceChoice::of(&device), DeviceChoice::Flex);
    /// assert_eq!(DeviceChoice::of(&device.autodiff()), DeviceChoice::Flex);
    /// assert!(DeviceChoice::Flex.is_cpu() && !DeviceChoice::Wgpu.is_cpu());
    /// # }
    /// ```
    pub fn of(device: &Device) -> DeviceChoice {
        #[cfg(feature = "flex")]
        if *device == Device::flex() {
            return DeviceChoice::Flex;
        }
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        if *device == Device::ndarray() {
            return DeviceChoice::NdArray;
        }
        let _ = device;
        DeviceChoice::Wgpu
    }

    /// Whether the backend computes on the CPU (flex, ndarray): there, augmentation runs
    /// per item in the loader's workers; on a GPU it runs batched on the device.
    pub fn is_cpu(self) -> bool {
        matches!(self, DeviceChoice::Flex | DeviceChoice::NdArray)
    }

    /// The device (without autodiff; training calls `.autodiff()` on it).
    ///
    /// # Errors
    /// [`DeviceError::NotCompiled`] when the backend's feature is off;
    /// [`DeviceError::NoAdapter`] when `wgpu` is asked for and no adapter works.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Auto => {
                #[cfg(feature = "wgpu")]
                if let Ok(d) = DeviceChoice::Wgpu.device() {
                    return Ok(d);
                }
                #[cfg(feature = "flex")]
                return Ok(Device::flex());
                #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
                return DeviceChoice::NdArray.device();
                #[allow(unreachable_code)]
                Err(DeviceError::NoBackend)
            }
            DeviceChoice::Flex => {
                #[cfg(feature = "flex")]
                return Ok(Device::flex());
                #[allow(unreachable_code)]
                Err(DeviceError::NotCompiled { backend: "flex" })
            }
            DeviceChoice::NdArray => {
                #[cfg(feature = "ndarray")]
                #[allow(deprecated)]
                return Ok(Device::ndarray());
                #[allow(unreachable_code)]
                Err(DeviceError::NotCompiled { backend: "ndarray" })
            }
            DeviceChoice::Wgpu => {
                #[cfg(feature = "wgpu")]
                return probe_wgpu();
                #[allow(unreachable_code)]
                Err(DeviceError::NotCompiled { backend: "wgpu" })
            }
        }
    }
}

/// Opens the default wgpu device and runs one tiny operation on it, so that a machine
/// without a usable adapter gives an error instead of a panic deep inside training.
#[cfg(feature = "wgpu")]
fn probe_wgpu() -> Result<Device, DeviceError> {
    use burn::tensor::{DeviceKind, Tensor};
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let s: f32 = (x.clone() + x).sum().into_scalar();
        (device, s)
    });
    match probe {
        Ok((device, 6.0)) => Ok(device),
        Ok((_, s)) => Err(DeviceError::NoAdapter {
            message: format!("probe computed {s}, expected 6"),
        }),
        Err(p) => Err(DeviceError::NoAdapter {
            message: p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "adapter initialisation panicked".into()),
        }),
    }
}
