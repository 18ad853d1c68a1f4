//! The architectures, as one typed enum.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A body architecture, as torchvision names it: a ResNet depth (`resnet18` …
/// `resnet152`, v1.5 stride placement), `mobilenet_v2` or `efficientnet_b0`.
///
/// Parses from and displays as torchvision's function names, which is what a CLI takes.
/// The ResNet-only facts (`layers`, `expansion`, `num_features`) are `None` for the other
/// families:
///
/// ```
/// use fastburn_models::{Arch, Family};
///
/// let arch: Arch = "resnet34".parse().unwrap();
/// assert_eq!(arch, Arch::ResNet34);
/// assert_eq!(arch.to_string(), "resnet34");
/// assert_eq!(arch.layers(), Some([3, 4, 6, 3]));
/// assert_eq!(arch.num_features(64), Some(512));
/// assert_eq!(Arch::ResNet50.num_features(64), Some(2048));
/// assert!("resnet35".parse::<Arch>().is_err());
///
/// let mobile: Arch = "mobilenet_v2".parse().unwrap();
/// assert_eq!(mobile, Arch::MobileNetV2);
/// assert_eq!(mobile.family(), Family::MobileNetV2);
/// assert_eq!(mobile.layers(), None);
/// assert!(!mobile.is_bottleneck());
/// assert_eq!("EfficientNet-B0".parse::<Arch>(), Ok(Arch::EfficientNetB0));
/// assert_eq!(Arch::EfficientNetB0.to_string(), "efficientnet_b0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 18 layers, basic blocks `[2, 2, 2, 2]`.
    ResNet18,
    /// 34 layers, basic blocks `[3, 4, 6, 3]`.
    ResNet34,
    /// 50 layers, bottleneck blocks `[3, 4, 6, 3]`.
    ResNet50,
    /// 101 layers, bottleneck blocks `[3, 4, 23, 3]`.
    ResNet101,
    /// 152 layers, bottleneck blocks `[3, 8, 36, 3]`.
    ResNet152,
    /// torchvision's `mobilenet_v2` ([`MobileNetV2Body`](crate::MobileNetV2Body)).
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2,
    /// torchvision's `efficientnet_b0` ([`EfficientNetBody`](crate::EfficientNetBody)).
    #[serde(rename = "efficientnet_b0")]
    EfficientNetB0,
}

/// The model family of an [`Arch`]: which [`Body`](crate::Body) variant builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// ResNets ([`ResNetBody`](crate::ResNetBody)); width set by `base_width`.
    ResNet,
    /// MobileNetV2 ([`MobileNetV2Body`](crate::MobileNetV2Body)); width set by `width_mult`.
    MobileNetV2,
    /// EfficientNet ([`EfficientNetBody`](crate::EfficientNetBody)); width set by
    /// `width_mult`.
    EfficientNet,
}

impl Arch {
    /// Every architecture, shallowest first.
    pub const ALL: [Arch; 7] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
        Arch::MobileNetV2,
        Arch::EfficientNetB0,
    ];

    /// torchvision's name (`"resnet34"`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
            Arch::MobileNetV2 => "mobilenet_v2",
            Arch::EfficientNetB0 => "efficientnet_b0",
        }
    }

    /// The family, i.e. the [`Body`](crate::Body) variant.
    pub fn family(self) -> Family {
        match self {
            Arch::ResNet18
            | Arch::ResNet34
            | Arch::ResNet50
            | Arch::ResNet101
            | Arch::ResNet152 => Family::ResNet,
            Arch::MobileNetV2 => Family::MobileNetV2,
            Arch::EfficientNetB0 => Family::EfficientNet,
        }
    }

    /// Whether this is a ResNet whose blocks are bottlenecks (1×1, 3×3, 1×1) rather than
    /// basic (3×3, 3×3); `false` for the other families.
    pub fn is_bottleneck(self) -> bool {
        self.expansion() == Some(4)
    }

    /// A ResNet block's channel expansion of its output over its width: 1 (basic) or 4
    /// (bottleneck); `None` for the other families.
    pub fn expansion(self) -> Option<usize> {
        match self {
            Arch::ResNet18 | Arch::ResNet34 => Some(1),
            Arch::ResNet50 | Arch::ResNet101 | Arch::ResNet152 => Some(4),
            Arch::MobileNetV2 | Arch::EfficientNetB0 => None,
        }
    }

    /// Number of blocks in a ResNet's `layer1` … `layer4`; `None` for the other families.
    pub fn layers(self) -> Option<[usize; 4]> {
        match self {
            Arch::ResNet18 => Some([2, 2, 2, 2]),
            Arch::ResNet34 | Arch::ResNet50 => Some([3, 4, 6, 3]),
            Arch::ResNet101 => Some([3, 4, 23, 3]),
            Arch::ResNet152 => Some([3, 8, 36, 3]),
            Arch::MobileNetV2 | Arch::EfficientNetB0 => None,
        }
    }

    /// Channels of a ResNet body's output (the input of `fc`): `8 · base_width ·
    /// expansion`, i.e. 512 or 2048 at torchvision's base width 64; `None` for the other
    /// families (their width is [`Body::out_channels`](crate::Body::out_channels)).
    pub fn num_features(self, base_width: usize) -> Option<usize> {
        self.expansion().map(|e| 8 * base_width * e)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Arch::from_str`]: the name is not one of [`Arch::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture `{0}` (expected one of resnet18, resnet34, resnet50, resnet101, resnet152, mobilenet_v2, efficientnet_b0)"
)]
pub struct ParseArchError(pub String);

impl FromStr for Arch {
    type Err = ParseArchError;

    /// Case-insensitive, ignoring `-` and `_`: accepts `resnet34`, `ResNet34`, `resnet-34`,
    /// `mobilenet_v2`, `MobileNetV2`, `efficientnet-b0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| *c != '-' && *c != '_')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let wanted = norm(s);
        Arch::ALL
            .into_iter()
            .find(|a| norm(a.name()) == wanted)
            .ok_or_else(|| ParseArchError(s.to_string()))
    }
}
