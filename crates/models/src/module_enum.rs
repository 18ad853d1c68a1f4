//! [`transparent_module_enum!`]: Burn's `Module` for an enum whose variants add nothing to
//! parameter paths.
//!
//! `#[derive(Module)]` on an enum puts the variant's name into every path
//! (`body.ResNet.conv1.weight`). torchvision names have no such level: an `nn.Sequential` of
//! mixed layers names its children `0`, `1`, …, and fastburn's [`VisionModel`](crate::VisionModel)
//! must keep the paths it had when its body could only be a ResNet (`body.conv1.weight`), so
//! checkpoints and export bundles stay loadable. Both use this macro: a `Vec` of
//! [`MobileNetV2Layer`](crate::MobileNetV2Layer), and [`Body`](crate::Body).

/// Implements `Module` for an enum of single-module variants *transparently*: the variant
/// adds nothing to parameter paths (unlike `#[derive(Module)]`), so a `Vec` of it names its
/// elements `0`, `1`, … like a torchvision `nn.Sequential` of mixed layers.
macro_rules! transparent_module_enum {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl burn::module::Module for $ty {
            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                match self {
                    $(Self::$variant(m) => burn::module::Module::collect_devices(m, devices),)+
                }
            }

            fn fork(self, device: &burn::tensor::Device) -> Self {
                match self {
                    $(Self::$variant(m) => Self::$variant(burn::module::Module::fork(m, device)),)+
                }
            }

            fn to_device(self, device: &burn::tensor::Device) -> Self {
                match self {
                    $(Self::$variant(m) => {
                        Self::$variant(burn::module::Module::to_device(m, device))
                    })+
                }
            }

            fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                match self {
                    $(Self::$variant(m) => burn::module::Module::visit(m, visitor),)+
                }
            }

            fn map<M: burn::module::ModuleMapper>(self, mapper: &mut M) -> Self {
                match self {
                    $(Self::$variant(m) => Self::$variant(burn::module::Module::map(m, mapper)),)+
                }
            }

            fn valid(&self) -> Self {
                match self {
                    $(Self::$variant(m) => Self::$variant(burn::module::Module::valid(m)),)+
                }
            }

            fn train(self) -> Self {
                match self {
                    $(Self::$variant(m) => Self::$variant(burn::module::Module::train(m)),)+
                }
            }

            fn materialize(self) -> Self {
                match self {
                    $(Self::$variant(m) => Self::$variant(burn::module::Module::materialize(m)),)+
                }
            }
        }

        impl burn::module::ModuleDisplayDefault for $ty {
            fn content(
                &self,
                content: burn::module::Content,
            ) -> Option<burn::module::Content> {
                match self {
                    $(Self::$variant(m) => burn::module::ModuleDisplayDefault::content(m, content),)+
                }
            }

            fn num_params(&self) -> usize {
                burn::module::Module::num_params(self)
            }
        }

        impl burn::module::ModuleDisplay for $ty {}

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let text = burn::module::ModuleDisplay::format(self, Default::default());
                f.write_str(&text)
            }
        }
    };
}
pub(crate) use transparent_module_enum;
