//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use burn::tensor::{Device, Tensor, TensorData};

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Every tensor of a safetensors file, as `TensorData`.
pub fn read_safetensors(path: &std::path::Path) -> BTreeMap<String, TensorData> {
    let mut store = SafetensorsStore::from_file(path);
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), bridge::to_data(t).unwrap()))
        .collect()
}

/// max |a - b|.
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).abs().max().into_scalar::<f32>()
}

/// A float tensor from `TensorData` (converted to f32).
pub fn tensor<const D: usize>(data: &TensorData, device: &Device) -> Tensor<D> {
    Tensor::from_data(data.clone().convert::<f32>(), device)
}

/// The CPU device the tests run on.
pub fn device() -> Device {
    Device::flex()
}

/// Writes a SafeTensors file (the format is an 8-byte header length, a JSON header and the
/// raw little-endian data), so that tests can build exactly the corrupt files they need.
pub fn write_safetensors(path: &std::path::Path, tensors: &BTreeMap<String, TensorData>) {
    use burn::tensor::DType;
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let dtype = match t.dtype() {
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::I32 => "I32",
            other => panic!("unsupported dtype {other:?}"),
        };
        let start = data.len();
        data.extend_from_slice(t.as_bytes());
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": t.shape().to_vec(),
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}
