//! fastai's `learn.summary()`: a per-layer table of output shapes and parameters.

use std::collections::HashSet;
use std::fmt;

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::head::pool;
use crate::resnet::{maxpool, stage};
use crate::{Block, Error, Head, ResNet, ResNetBody, VisionModel};

/// Number of parameters of a module — weights and biases, *not* BatchNorm running
/// statistics (Burn's [`Module::num_params`] counts those too; PyTorch's
/// `sum(p.numel() for p in model.parameters())` does not). Does not materialise lazily
/// initialised parameters.
///
/// ```
/// use burn::module::Module;
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::Device;
/// use fastburn_models::num_parameters;
///
/// let bn = BatchNormConfig::new(8).init(&Device::flex());
/// assert_eq!(num_parameters(&bn), 16); // gamma, beta
/// assert_eq!(bn.num_params(), 32); // + running mean, running var
/// ```
pub fn num_parameters<M: Module>(module: &M) -> usize {
    count(module, None).0
}

/// Counts (all parameters, those whose id is in `trainable`), skipping running statistics.
fn count<M: Module>(module: &M, trainable: Option<&HashSet<ParamId>>) -> (usize, usize) {
    struct Counter<'a> {
        last: Vec<String>,
        trainable: Option<&'a HashSet<ParamId>>,
        total: usize,
        trainable_total: usize,
    }
    impl ModuleVisitor for Counter<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.last.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.last.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let name = self.last.last().map(String::as_str).unwrap_or("");
            if name == "running_mean" || name == "running_var" {
                return;
            }
            let n = param.lazy_shape().num_elements();
            self.total += n;
            if self.trainable.is_some_and(|t| t.contains(&param.id)) {
                self.trainable_total += n;
            }
        }
    }
    let mut c = Counter {
        last: Vec::new(),
        trainable,
        total: 0,
        trainable_total: 0,
    };
    module.visit(&mut c);
    (c.total, c.trainable_total)
}

/// Ids of the parameters that train (require a gradient once on an autodiff device).
fn trainable_ids<M: Module>(module: &M) -> HashSet<ParamId> {
    struct Ids(HashSet<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0.insert(param.id);
            }
        }
    }
    let mut ids = Ids(HashSet::new());
    // `train` reinstates each parameter's configured gradient requirement on the autodiff
    // device, which is what "trainable" means whatever device the model is on now.
    module.clone().train().visit(&mut ids);
    ids.0
}

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Path of the layer in the model (`body.layer1`, `head.layers.0.linear`, ...).
    pub name: String,
    /// Layer type, in PyTorch's vocabulary (`Conv2d`, `BatchNorm1d`, ...).
    pub kind: String,
    /// Output shape for the summary's input.
    pub output_shape: Vec<usize>,
    /// Parameters (not counting BatchNorm running statistics).
    pub params: usize,
    /// Of those, the trainable ones.
    pub trainable_params: usize,
}

impl LayerSummary {
    /// Whether the layer has parameters and all of them train.
    pub fn trainable(&self) -> bool {
        self.params > 0 && self.trainable_params == self.params
    }
}

/// The table [`summary`] returns; `Display` prints it like fastai's `learn.summary()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The model's type.
    pub model: String,
    /// The input shape used.
    pub input_shape: [usize; 4],
    /// One row per top-level layer, in forward order.
    pub layers: Vec<LayerSummary>,
    /// All parameters.
    pub total_params: usize,
    /// Trainable parameters.
    pub trainable_params: usize,
}

/// Models [`summary`] can describe.
pub trait Summarize: Module {
    /// The type name in the table's header.
    fn type_name(&self) -> &'static str;

    /// Input channels the model takes.
    fn in_channels(&self) -> usize;

    /// Runs `x` through the model (which the caller has put in eval mode), one row per
    /// top-level layer; `trainable` holds the ids of the trainable parameters.
    fn layer_rows(&self, x: Tensor<4>, trainable: &HashSet<ParamId>) -> Vec<LayerSummary>;
}

/// Runs one eval-mode forward pass of a `[N, C, H, W]` batch of zeros and tabulates every
/// top-level layer: output shape, parameters, trainable parameters. The model itself is not
/// changed (BatchNorm statistics included).
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use fastburn_models::{summary, Arch, VisionModelConfig};
///
/// let device = Device::flex();
/// let model = VisionModelConfig::new(Arch::ResNet18, 17).with_base_width(8).init(&device);
/// let s = summary(&model, [2, 3, 64, 64], &device)?;
/// let layer4 = s.layers.iter().find(|l| l.name == "body.layer4").unwrap();
/// assert_eq!(layer4.output_shape, vec![2, 64, 2, 2]);
/// let pool = s.layers.iter().find(|l| l.name == "head.pool").unwrap();
/// assert_eq!(pool.output_shape, vec![2, 128, 1, 1]);
/// assert_eq!(s.total_params, fastburn_models::num_parameters(&model));
/// assert_eq!(s.trainable_params, s.total_params);
/// println!("{s}");
/// // An input the network cannot take is an error, not a panic:
/// assert!(summary(&model, [2, 3, 16, 16], &device).is_err());
/// # Ok::<(), fastburn_models::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] when the input does not fit the model: an empty batch, a
/// channel count other than the stem's, or a side under 32 px (every body halves it five
/// times).
pub fn summary<M: Summarize>(
    model: &M,
    input: [usize; 4],
    device: &Device,
) -> Result<Summary, Error> {
    let [n, c, h, w] = input;
    let want_c = model.in_channels();
    let problem = if n == 0 {
        Some("a batch of at least one image".to_string())
    } else if c != want_c {
        Some(format!("{want_c} input channels"))
    } else if h < 32 || w < 32 {
        Some("height and width of at least 32 px".to_string())
    } else {
        None
    };
    if let Some(expected) = problem {
        return Err(Error::InvalidInput {
            shape: input,
            model: model.type_name(),
            expected,
        });
    }
    let trainable = trainable_ids(model);
    let eval = model.valid();
    let x = Tensor::zeros(input, &device.clone().without_autodiff());
    let layers = eval.layer_rows(x, &trainable);
    let (total_params, trainable_params) = count(model, Some(&trainable));
    Ok(Summary {
        model: model.type_name().to_string(),
        input_shape: input,
        layers,
        total_params,
        trainable_params,
    })
}

pub(crate) struct Rows<'a> {
    prefix: &'static str,
    pub(crate) rows: Vec<LayerSummary>,
    trainable: &'a HashSet<ParamId>,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(prefix: &'static str, trainable: &'a HashSet<ParamId>) -> Self {
        Self {
            prefix,
            rows: Vec::new(),
            trainable,
        }
    }

    pub(crate) fn layer<M: Module>(&mut self, name: &str, kind: &str, module: &M, out: &[usize]) {
        let (params, trainable_params) = count(module, Some(self.trainable));
        self.rows.push(LayerSummary {
            name: format!("{}{name}", self.prefix),
            kind: kind.to_string(),
            output_shape: out.to_vec(),
            params,
            trainable_params,
        });
    }

    pub(crate) fn op(&mut self, name: &str, kind: &str, out: &[usize]) {
        self.rows.push(LayerSummary {
            name: format!("{}{name}", self.prefix),
            kind: kind.to_string(),
            output_shape: out.to_vec(),
            params: 0,
            trainable_params: 0,
        });
    }
}

pub(crate) fn body_rows(
    rows: &mut Rows<'_>,
    conv1: &burn::nn::conv::Conv2d,
    bn1: &burn::nn::BatchNorm,
    layers: [&Vec<Block>; 4],
    x: Tensor<4>,
) -> Tensor<4> {
    let x = conv1.forward(x);
    rows.layer("conv1", "Conv2d", conv1, &x.dims());
    let x = bn1.forward(x);
    rows.layer("bn1", "BatchNorm2d", bn1, &x.dims());
    let x = relu(x);
    rows.op("relu", "ReLU", &x.dims());
    let mut x = maxpool(x);
    rows.op("maxpool", "MaxPool2d", &x.dims());
    for (i, layer) in layers.into_iter().enumerate() {
        x = stage(layer, x);
        let kind = match layer.first() {
            Some(b) if b.is_bottleneck() => format!("Sequential({} × Bottleneck)", layer.len()),
            _ => format!("Sequential({} × BasicBlock)", layer.len()),
        };
        rows.layer(&format!("layer{}", i + 1), &kind, layer, &x.dims());
    }
    x
}

/// One row per element of an `nn.Sequential`-like `features` (`features.0`, `features.1`,
/// …), run in order.
pub(crate) fn sequential_rows<L: Module>(
    layers: &[L],
    forward: impl Fn(&L, Tensor<4>) -> Tensor<4>,
    kind: impl Fn(&L) -> String,
    mut x: Tensor<4>,
    trainable: &HashSet<ParamId>,
) -> (Vec<LayerSummary>, Tensor<4>) {
    let mut rows = Rows::new("", trainable);
    for (i, l) in layers.iter().enumerate() {
        x = forward(l, x);
        rows.layer(&format!("features.{i}"), &kind(l), l, &x.dims());
    }
    (rows.rows, x)
}

fn head_rows(rows: &mut Rows<'_>, head: &Head, x: Tensor<4>) -> Tensor<2> {
    let pooled = pool(x, head.concat_pool);
    let [n, c] = pooled.dims();
    let kind = if head.concat_pool {
        "AdaptiveConcatPool2d"
    } else {
        "AdaptiveAvgPool2d"
    };
    rows.op("pool", kind, &[n, c, 1, 1]);
    rows.op("flatten", "Flatten", &[n, c]);
    let mut x = pooled;
    for (i, l) in head.layers.iter().enumerate() {
        x = l.bn.forward(x);
        rows.layer(&format!("layers.{i}.bn"), "BatchNorm1d", &l.bn, &x.dims());
        if let Some(d) = &l.dropout {
            x = d.forward(x);
            rows.op(&format!("layers.{i}.dropout"), "Dropout", &x.dims());
        }
        x = l.linear.forward(x);
        rows.layer(
            &format!("layers.{i}.linear"),
            "Linear",
            &l.linear,
            &x.dims(),
        );
        if l.relu {
            x = relu(x);
            rows.op(&format!("layers.{i}.relu"), "ReLU", &x.dims());
        }
    }
    if let Some(bn) = &head.bn_final {
        x = bn.forward(x);
        rows.layer("bn_final", "BatchNorm1d", bn, &x.dims());
    }
    x
}

impl Summarize for VisionModel {
    fn type_name(&self) -> &'static str {
        "VisionModel"
    }

    fn in_channels(&self) -> usize {
        self.body.in_channels()
    }

    fn layer_rows(&self, x: Tensor<4>, trainable: &HashSet<ParamId>) -> Vec<LayerSummary> {
        let (body_rows, x) = self.body.summary_rows(x, trainable);
        let mut out: Vec<LayerSummary> = body_rows
            .into_iter()
            .map(|r| LayerSummary {
                name: format!("body.{}", r.name),
                ..r
            })
            .collect();
        let mut rows = Rows::new("head.", trainable);
        head_rows(&mut rows, &self.head, x);
        out.extend(rows.rows);
        out
    }
}

impl Summarize for ResNet {
    fn type_name(&self) -> &'static str {
        "ResNet"
    }

    fn in_channels(&self) -> usize {
        ResNet::in_channels(self)
    }

    fn layer_rows(&self, x: Tensor<4>, trainable: &HashSet<ParamId>) -> Vec<LayerSummary> {
        let mut rows = Rows::new("", trainable);
        let x = body_rows(
            &mut rows,
            &self.conv1,
            &self.bn1,
            [&self.layer1, &self.layer2, &self.layer3, &self.layer4],
            x,
        );
        let x: Tensor<2> = x.mean_dims(&[2, 3]).flatten(1, 3);
        let [n, c] = x.dims();
        rows.op("avgpool", "AdaptiveAvgPool2d", &[n, c, 1, 1]);
        rows.op("flatten", "Flatten", &[n, c]);
        let x = self.fc.forward(x);
        rows.layer("fc", "Linear", &self.fc, &x.dims());
        rows.rows
    }
}

impl Summarize for ResNetBody {
    fn type_name(&self) -> &'static str {
        "ResNetBody"
    }

    fn in_channels(&self) -> usize {
        ResNetBody::in_channels(self)
    }

    fn layer_rows(&self, x: Tensor<4>, trainable: &HashSet<ParamId>) -> Vec<LayerSummary> {
        let mut rows = Rows::new("", trainable);
        body_rows(
            &mut rows,
            &self.conv1,
            &self.bn1,
            [&self.layer1, &self.layer2, &self.layer3, &self.layer4],
            x,
        );
        rows.rows
    }
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shape(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" x ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["Layer (type)", "Output Shape", "Param #", "Trainable"];
        let cells: Vec<[String; 4]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    format!("{} ({})", l.name, l.kind),
                    shape(&l.output_shape),
                    thousands(l.params),
                    match (l.params, l.trainable()) {
                        (0, _) => String::new(),
                        (_, true) => "True".into(),
                        _ if l.trainable_params == 0 => "False".into(),
                        _ => "Partly".into(),
                    },
                ]
            })
            .collect();
        let mut width = header.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let total: usize = width.iter().sum::<usize>() + 3 * 3;
        let rule = "=".repeat(total);
        writeln!(
            f,
            "{} (Input shape: {})",
            self.model,
            shape(&self.input_shape)
        )?;
        writeln!(f, "{rule}")?;
        let line = |f: &mut fmt::Formatter<'_>, r: [&str; 4]| {
            let text = format!(
                "{:<w0$}   {:<w1$}   {:>w2$}   {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
            );
            writeln!(f, "{}", text.trim_end())
        };
        line(f, header)?;
        writeln!(f, "{rule}")?;
        for row in &cells {
            line(f, [&row[0], &row[1], &row[2], &row[3]])?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        writeln!(
            f,
            "Total trainable params: {}",
            thousands(self.trainable_params)
        )?;
        write!(
            f,
            "Total non-trainable params: {}",
            thousands(self.total_params - self.trainable_params)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(11_689_512), "11,689,512");
    }
}
