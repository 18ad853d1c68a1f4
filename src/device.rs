//! Choosing a backend at run time: `--device auto|flex|ndarray|wgpu|cuda`, and lists of
//! devices for data-parallel training: `--devices cuda:0,cuda:1`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A backend choice, parsed from `auto`, `flex`, `ndarray`, `wgpu` or `cuda`
/// (case-insensitive).
///
/// ```
/// use fastburn::device::DeviceChoice;
/// let choice: DeviceChoice = "FLEX".parse()?;
/// assert_eq!(choice, DeviceChoice::Flex);
/// assert_eq!("cuda".parse::<DeviceChoice>()?, DeviceChoice::Cuda);
/// assert!("tpu".parse::<DeviceChoice>().is_err());
/// # #[cfg(not(feature = "cuda"))]
/// assert!(matches!(
///     DeviceChoice::Cuda.device(),
///     Err(fastburn::device::DeviceError::NotCompiled { backend: "cuda" })
/// ));
/// # #[cfg(feature = "flex")]
/// assert_eq!(choice.device()?, burn::tensor::Device::flex());
/// # Ok::<(), fastburn::device::DeviceError>(())
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when compiled in and a GPU answers, else wgpu when compiled in and an adapter
    /// answers, else flex, else ndarray.
    #[default]
    Auto,
    /// Burn's pure-Rust CPU backend (feature `flex`).
    Flex,
    /// Burn's ndarray CPU backend (feature `ndarray`).
    NdArray,
    /// wgpu (feature `wgpu`).
    Wgpu,
    /// NVIDIA GPUs through Burn's CUDA backend (feature `cuda`); GPU 0 (`cuda:N` in a
    /// [`DeviceSpec`] picks another).
    Cuda,
}

/// Why a device could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The name is not one of `auto`, `flex`, `ndarray`, `wgpu`, `cuda` (with an index in a
    /// list: `cuda:1`, `wgpu:0`).
    #[error(
        "unknown device `{value}` (expected auto, flex, ndarray, wgpu, cuda, or cuda:N / wgpu:N)"
    )]
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
    #[error("no backend is compiled in: enable one of the features flex, ndarray, wgpu, cuda")]
    NoBackend,
    /// wgpu found no usable adapter.
    #[error("wgpu found no usable adapter: {message}")]
    NoAdapter {
        /// What wgpu reported.
        message: String,
    },
    /// CUDA could not open the GPU (no driver, no such GPU, NVRTC missing).
    #[error("CUDA could not open GPU {index}: {message}")]
    NoCudaDevice {
        /// The GPU index.
        index: usize,
        /// What CUDA reported.
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
            "cuda" => Ok(DeviceChoice::Cuda),
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
            DeviceChoice::Cuda => "cuda",
        })
    }
}

impl DeviceChoice {
    /// The backends compiled into this build, in `auto`'s order of preference.
    pub fn compiled() -> Vec<DeviceChoice> {
        let mut v = Vec::new();
        if cfg!(feature = "cuda") {
            v.push(DeviceChoice::Cuda);
        }
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

    /// The backend `device` runs on, with or without autodiff: `Flex`, `NdArray`, `Cuda` or
    /// `Wgpu` (never `Auto`; a device that is none of the first three is reported as `Wgpu`,
    /// the only other backend fastburn compiles in).
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
        if cuda_index(device).is_some() {
            return DeviceChoice::Cuda;
        }
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
    /// [`DeviceError::NoAdapter`] / [`DeviceError::NoCudaDevice`] when `wgpu` / `cuda` is asked for and
    /// the GPU does not answer.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Auto => {
                #[cfg(feature = "cuda")]
                if let Ok(d) = DeviceChoice::Cuda.device() {
                    return Ok(d);
                }
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
            DeviceChoice::Wgpu => DeviceSpec::new(self, 0).device(),
            DeviceChoice::Cuda => DeviceSpec::new(self, 0).device(),
        }
    }
}

/// The index of the CUDA GPU `device` is (with or without autodiff), if it is one.
fn cuda_index(device: &Device) -> Option<usize> {
    #[cfg(feature = "cuda")]
    {
        let plain = device.clone().without_autodiff();
        (0..64).find(|&i| plain == Device::cuda(i))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        None
    }
}

/// One device of a list: a backend and, for `cuda` and `wgpu`, which GPU (`cuda:1`; `wgpu:N`
/// is the N-th discrete GPU, plain `wgpu` the default adapter). Written and parsed as that
/// text, also in `recipe.json`.
///
/// ```
/// use fastburn::device::{DeviceChoice, DeviceSpec};
/// let spec: DeviceSpec = "cuda:1".parse()?;
/// assert_eq!(spec, DeviceSpec::new(DeviceChoice::Cuda, 1));
/// assert_eq!(spec.to_string(), "cuda:1");
/// assert_eq!("flex".parse::<DeviceSpec>()?.to_string(), "flex");
/// assert!("flex:1".parse::<DeviceSpec>().is_err()); // a CPU backend is one device
/// assert!("auto:0".parse::<DeviceSpec>().is_err());
/// # Ok::<(), fastburn::device::DeviceError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceSpec {
    /// The backend.
    pub choice: DeviceChoice,
    /// The GPU index (0 for everything but `cuda:N` and `wgpu:N`).
    pub index: usize,
}

impl DeviceSpec {
    /// `choice`, GPU `index`.
    pub fn new(choice: DeviceChoice, index: usize) -> Self {
        DeviceSpec { choice, index }
    }

    /// The device (without autodiff), opened and checked with one tiny operation for the
    /// GPU backends.
    ///
    /// # Errors
    /// [`DeviceError::NotCompiled`] when the backend's feature is off;
    /// [`DeviceError::NoAdapter`] or [`DeviceError::NoCudaDevice`] when the GPU does not
    /// answer.
    pub fn device(self) -> Result<Device, DeviceError> {
        let index = self.index;
        match self.choice {
            DeviceChoice::Wgpu => {
                #[cfg(feature = "wgpu")]
                {
                    use burn::tensor::DeviceKind;
                    let kind = if index == 0 {
                        DeviceKind::DefaultDevice
                    } else {
                        DeviceKind::DiscreteGpu(index)
                    };
                    return probe(Device::wgpu(kind))
                        .map_err(|message| DeviceError::NoAdapter { message });
                }
                #[allow(unreachable_code)]
                Err(DeviceError::NotCompiled { backend: "wgpu" })
            }
            DeviceChoice::Cuda => {
                #[cfg(feature = "cuda")]
                return probe(Device::cuda(index))
                    .map_err(|message| DeviceError::NoCudaDevice { index, message });
                #[allow(unreachable_code)]
                {
                    let _ = index;
                    Err(DeviceError::NotCompiled { backend: "cuda" })
                }
            }
            choice => choice.device(),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || DeviceError::Unknown {
            value: s.to_string(),
        };
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => (n, Some(i.parse::<usize>().map_err(|_| unknown())?)),
            None => (s, None),
        };
        let choice: DeviceChoice = name.parse()?;
        match (choice, index) {
            (DeviceChoice::Auto, Some(_)) => Err(unknown()),
            (DeviceChoice::Cuda | DeviceChoice::Wgpu, i) => {
                Ok(DeviceSpec::new(choice, i.unwrap_or(0)))
            }
            (_, Some(_)) => Err(unknown()),
            (c, None) => Ok(DeviceSpec::new(c, 0)),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.choice {
            DeviceChoice::Cuda => write!(f, "cuda:{}", self.index),
            DeviceChoice::Wgpu if self.index > 0 => write!(f, "wgpu:{}", self.index),
            c => write!(f, "{c}"),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = DeviceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(s: DeviceSpec) -> String {
        s.to_string()
    }
}

/// Runs one tiny operation on a GPU device, so that a machine without a usable GPU gives an
/// error instead of a panic deep inside training.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn probe(device: Device) -> Result<Device, String> {
    use burn::tensor::Tensor;
    let run = std::panic::catch_unwind(|| {
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let s: f32 = (x.clone() + x).sum().into_scalar();
        s
    });
    match run {
        Ok(6.0) => Ok(device),
        Ok(s) => Err(format!("probe computed {s}, expected 6")),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "device initialisation panicked".into())),
    }
}
