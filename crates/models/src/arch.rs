//! The ResNet architectures, as one typed enum.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A ResNet depth, as in torchvision (`resnet18` … `resnet152`, v1.5 stride placement).
///
/// Parses from and displays as torchvision's function names, which is what a CLI takes:
///
/// ```
/// use fastburn_models::Arch;
///
/// let arch: Arch = "resnet34".parse().unwrap();
/// assert_eq!(arch, Arch::ResNet34);
/// assert_eq!(arch.to_string(), "resnet34");
/// assert_eq!(arch.layers(), [3, 4, 6, 3]);
/// assert_eq!(arch.num_features(64), 512);
/// assert_eq!(Arch::ResNet50.num_features(64), 2048);
/// assert!("resnet35".parse::<Arch>().is_err());
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
}

impl Arch {
    /// Every architecture, shallowest first.
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
    ];

    /// torchvision's name (`"resnet34"`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
        }
    }

    /// Whether the blocks are bottlenecks (1×1, 3×3, 1×1) rather than basic (3×3, 3×3).
    pub fn is_bottleneck(self) -> bool {
        self.expansion() == 4
    }

    /// Channel expansion of a block's output over its width: 1 (basic) or 4 (bottleneck).
    pub fn expansion(self) -> usize {
        match self {
            Arch::ResNet18 | Arch::ResNet34 => 1,
            Arch::ResNet50 | Arch::ResNet101 | Arch::ResNet152 => 4,
        }
    }

    /// Number of blocks in `layer1` … `layer4`.
    pub fn layers(self) -> [usize; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
            Arch::ResNet101 => [3, 4, 23, 3],
            Arch::ResNet152 => [3, 8, 36, 3],
        }
    }

    /// Channels of the body's output (the input of `fc`): `8 · base_width · expansion`,
    /// i.e. 512 or 2048 at torchvision's base width 64.
    pub fn num_features(self, base_width: usize) -> usize {
        8 * base_width * self.expansion()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Arch::from_str`]: the name is not one of `resnet18|34|50|101|152`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture `{0}` (expected one of resnet18, resnet34, resnet50, resnet101, resnet152)"
)]
pub struct ParseArchError(pub String);

impl FromStr for Arch {
    type Err = ParseArchError;

    /// Case-insensitive; accepts `resnet34`, `ResNet34` and `resnet-34`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == norm)
            .ok_or_else(|| ParseArchError(s.to_string()))
    }
}
