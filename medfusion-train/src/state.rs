//! Weights and optimizer state as safetensors bytes, and the resumable training state.
//!
//! - Model weights use PyTorch's names and layouts (`layer1.0.conv1.weight`, linear weights
//!   `[out, in]`, batch norm `weight`/`bias`/`running_mean`/`running_var`), through
//!   `burn::store`'s safetensors store and its PyTorch adapters.
//! - Optimizer state is Burn's per-parameter record with each tensor renamed from the
//!   parameter's run-time id to its module path, `<param path>/<state field>` (for Adam:
//!   `layer1.0.conv1.weight/momentum.moment_1`), and its scalars (step counts, ranks) in the
//!   safetensors metadata as `<param path>/<scalar>` → JSON. Parameter ids change between
//!   runs; paths do not, so a resumed run finds its state.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::store::burn_pack::{self, Reader, Scalar, Writer};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Bytes, DType, Tensor};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::error::{Error, Result};
use crate::model::Model;

fn state_err(part: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::State {
        part,
        reason: reason.to_string(),
    }
}

/// The model's weights (and batch-norm statistics) as safetensors bytes with PyTorch names.
pub fn model_to_safetensors(model: &Model) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    model
        .save_into(&mut store)
        .map_err(|e| state_err("model", e))?;
    store.get_bytes().map_err(|e| state_err("model", e))
}

/// Loads safetensors weights written by [`model_to_safetensors`] (or by PyTorch for the
/// same architecture) into `model`; every parameter must be present with its shape.
pub fn load_model_safetensors(model: &mut Model, bytes: Vec<u8>) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(true)
        // Mismatches come back in the result, described below in words (the store's own
        // message is a `Debug` dump).
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| state_err("model", e))?;
    if let Some(error) = result.errors.first() {
        return Err(state_err("model", apply_error_sentence(error)));
    }
    if let Some((name, _)) = result.missing.first() {
        return Err(state_err(
            "model",
            format!(
                "`{name}` is missing ({} tensors missing; was it saved from another model?)",
                result.missing.len()
            ),
        ));
    }
    Ok(())
}

/// `a×b×c` for messages.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// Burn's reason a saved tensor does not fit the model, as a sentence (its `Debug` output
/// is not for users).
fn apply_error_sentence(error: &burn::store::ApplyError) -> String {
    use burn::store::ApplyError;
    match error {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => format!(
            "the saved weights do not fit the model: `{path}` is {} in the file but {} in the \
             model (were they saved from a model built for other data: another number of \
             classes, image channels or tabular features?)",
            dims(found.as_slice()),
            dims(expected.as_slice())
        ),
        ApplyError::DTypeMismatch {
            path,
            expected,
            found,
        } => format!(
            "`{path}` holds {} values in the file but the model needs {}",
            dtype_name(found),
            dtype_name(expected)
        ),
        ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
            format!("`{path}` cannot be read: {message}")
        }
    }
}

/// A dtype as NumPy and PyTorch users know it (`float32`).
fn dtype_name(dtype: &DType) -> String {
    match dtype {
        DType::F64 => "float64".into(),
        DType::F32 => "float32".into(),
        DType::F16 => "float16".into(),
        DType::BF16 => "bfloat16".into(),
        DType::I64 => "int64".into(),
        DType::I32 => "int32".into(),
        DType::U8 => "uint8".into(),
        DType::Bool(_) => "bool".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Module path of every parameter, by id.
fn param_paths<M: Module>(model: &M) -> HashMap<ParamId, String> {
    struct Paths {
        path: Vec<String>,
        out: HashMap<ParamId, String>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.insert(param.id, self.path.join("."));
        }
    }
    let mut v = Paths {
        path: Vec::new(),
        out: HashMap::new(),
    };
    model.visit(&mut v);
    v.out
}

fn to_safetensors_dtype(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::U8 => Dtype::U8,
        _ => return None,
    })
}

fn from_safetensors_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::U8 => DType::U8,
        _ => return None,
    })
}

/// Splits `"<id>.<rest>"`.
fn split_id(name: &str) -> Option<(u64, &str)> {
    let (id, rest) = name.split_once('.')?;
    Some((id.parse().ok()?, rest))
}

/// The optimizer's state for `model`'s parameters as safetensors bytes (see the module docs).
pub fn optimizer_to_safetensors(optim: &ModuleOptimizer, model: &Model) -> Result<Vec<u8>> {
    let err = |e: &dyn std::fmt::Display| state_err("optimizer", e);
    let paths = param_paths(model);
    let path_of = |id: u64| {
        paths.get(&ParamId::from(id)).ok_or_else(|| {
            err(&format!(
                "state for parameter id {id}, which the model does not have"
            ))
        })
    };
    let bytes = optim.into_bytes().map_err(|e| err(&e))?;
    let reader = Reader::from_bytes(bytes).map_err(|e| err(&e))?;
    let mut metadata = HashMap::new();
    for (key, value) in reader.scalars() {
        let (id, rest) = split_id(key).ok_or_else(|| err(&format!("unexpected scalar `{key}`")))?;
        let json = serde_json::to_string(value).map_err(|e| err(&e))?;
        metadata.insert(format!("{}/{rest}", path_of(id)?), json);
    }
    let mut tensors = Vec::new();
    for tensor in reader.into_tensors().map_err(|e| err(&e))? {
        let (name, dtype, shape, _, bytes) = tensor.into_parts().map_err(|e| err(&e))?;
        let (id, rest) =
            split_id(&name).ok_or_else(|| err(&format!("unexpected tensor `{name}`")))?;
        let dtype = to_safetensors_dtype(dtype)
            .ok_or_else(|| err(&format!("`{name}` has dtype {dtype:?}")))?;
        tensors.push((
            format!("{}/{rest}", path_of(id)?),
            dtype,
            shape.to_vec(),
            bytes,
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| err(&e))
}

/// Restores optimizer state saved by [`optimizer_to_safetensors`] onto `optim` for `model`
/// (whose parameter ids may differ from the run that saved it).
pub fn load_optimizer_safetensors(
    optim: ModuleOptimizer,
    model: &Model,
    bytes: &[u8],
) -> Result<ModuleOptimizer> {
    let err = |e: &dyn std::fmt::Display| state_err("optimizer", e);
    let ids: HashMap<String, u64> = param_paths(model)
        .into_iter()
        .map(|(id, path)| (path, id.val()))
        .collect();
    let id_of = |key: &str| -> Result<(u64, String)> {
        let (path, rest) = key
            .split_once('/')
            .ok_or_else(|| err(&format!("entry `{key}` has no `/`")))?;
        let id = ids.get(path).ok_or_else(|| {
            err(&format!(
                "state for `{path}`, which the model does not have"
            ))
        })?;
        Ok((*id, format!("{id}.{rest}")))
    };
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| err(&e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| err(&e))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let (id, burn_name) = id_of(&name)?;
        let dtype = from_safetensors_dtype(view.dtype())
            .ok_or_else(|| err(&format!("`{name}` has dtype {:?}", view.dtype())))?;
        let data = Bytes::from_bytes_vec(view.data().to_vec());
        tensors.push(burn_pack::Tensor::new(
            burn_name,
            dtype,
            view.shape().to_vec(),
            Some(id),
            data,
        ));
    }
    let mut writer = Writer::new(tensors);
    let mut paths = BTreeMap::new();
    for (key, value) in header.metadata().iter().flatten() {
        let (id, burn_key) = id_of(key)?;
        let scalar: Scalar = serde_json::from_str(value).map_err(|e| err(&e))?;
        writer = writer.with_scalar(&burn_key, scalar);
        let path = key.split_once('/').map_or("", |(p, _)| p);
        paths.insert(id.to_string(), path.to_owned());
    }
    for (id, path) in &paths {
        writer = writer.with_metadata(id, path);
    }
    let bytes = writer.into_bytes().map_err(|e| err(&e))?;
    optim.from_bytes(bytes).map_err(|e| err(&e))
}
