//! The files of an attempt run outside the engine's process (`medfusion node-exec` in a
//! cluster job): what the engine's side writes for it, and what it writes back, in one
//! folder on a filesystem both sides see (`<run dir>/jobs/<node>/<attempt>/`).
//!
//! ```text
//! request.json            the run, the workflow, the node, its config, inputs and progress
//! values/<n>/<blob>       the binary parts of those values
//! events.jsonl            the attempt's events as it runs (JSON lines)
//! progress/<seq>/         each progress the node saved: value.json and its blobs
//! result.json             written last, whole: the outputs (blobs in outputs/), or the error
//! ```
//!
//! Every file is written under a temporary name and renamed into place, so the other side
//! never reads half of one; `result.json` appears only once everything it names is there.
//! The engine's side never trusts the exit code of whatever ran the attempt: the result file
//! decides whether it succeeded.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use medfusion_graph::{Plan, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::context::{NodeContext, Outputs};
use crate::error::{BoxError, NodeError};
use crate::registry::Registry;
use crate::runner::DetachedAttempt;
use crate::state::{ErrorRecord, ResourceUsage};
use crate::value::SavedValue;

/// The version of the attempt files.
pub const ATTEMPT_FORMAT: u32 = 1;

/// A saved value as the attempt files hold it: blobs as files beside the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ValueFile {
    codec: String,
    #[serde(default)]
    data: Json,
    /// Blob name to its file, relative to the attempt folder.
    #[serde(default)]
    blobs: BTreeMap<String, String>,
}

/// What an attempt run elsewhere is asked to do.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    /// The run.
    pub run_id: String,
    /// The whole workflow, as the engine planned it.
    pub workflow: Workflow,
    /// The node's id.
    pub node: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The node's config for this attempt (with any retry change).
    pub config: Map<String, Json>,
    /// The values on its inputs, saved, by port in edge order.
    pub inputs: Vec<(String, Vec<SavedValue>)>,
    /// Progress to continue from.
    pub resume: Option<SavedValue>,
    /// Whatever the runner's other side needs besides (the binary's settings).
    pub settings: Json,
}

#[derive(Serialize, Deserialize)]
struct RequestFile {
    format: u32,
    run_id: String,
    workflow: Workflow,
    node: String,
    attempt: u32,
    config: Map<String, Json>,
    inputs: Vec<(String, Vec<ValueFile>)>,
    resume: Option<ValueFile>,
    #[serde(default)]
    settings: Json,
}

/// How an attempt run elsewhere ended.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    /// The outputs, saved, by port (when it succeeded).
    pub outputs: Vec<(String, SavedValue)>,
    /// Why it failed (when it did).
    pub error: Option<ErrorRecord>,
    /// The config changes the failed attempt asked its retry to make.
    pub retry_with: Option<Map<String, Json>>,
    /// The resources it used, measured where it ran.
    pub usage: Option<ResourceUsage>,
}

#[derive(Serialize, Deserialize)]
struct ResultFile {
    format: u32,
    #[serde(default)]
    outputs: Vec<(String, ValueFile)>,
    #[serde(default)]
    error: Option<ErrorRecord>,
    #[serde(default)]
    retry_with: Option<Map<String, Json>>,
    #[serde(default)]
    usage: Option<ResourceUsage>,
}

/// The folder of one attempt run elsewhere.
#[derive(Debug, Clone)]
pub struct AttemptFiles {
    dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)
}

fn json_error(path: &Path, e: impl std::fmt::Display) -> BoxError {
    format!("`{}` cannot be read: {e}", path.display()).into()
}

impl AttemptFiles {
    /// The attempt folder `dir` (created when written to).
    pub fn new(dir: impl Into<PathBuf>) -> AttemptFiles {
        AttemptFiles { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The attempt's events, one JSON object a line.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Write `value`'s blobs under `prefix` and return how the JSON refers to them.
    fn write_value(&self, prefix: &str, value: &SavedValue) -> io::Result<ValueFile> {
        let mut blobs = BTreeMap::new();
        if !value.blobs.is_empty() {
            fs::create_dir_all(self.dir.join(prefix))?;
        }
        for (name, blob) in &value.blobs {
            // Blob names are the value's own (`model.safetensors`); keep them file-safe.
            let file: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let relative = format!("{prefix}/{file}");
            write_atomic(&self.dir.join(&relative), blob)?;
            blobs.insert(name.clone(), relative);
        }
        Ok(ValueFile {
            codec: value.codec.clone(),
            data: value.data.clone(),
            blobs,
        })
    }

    fn read_value(&self, file: ValueFile) -> Result<SavedValue, BoxError> {
        let mut value = SavedValue::json(file.codec, file.data);
        for (name, relative) in file.blobs {
            if relative.contains("..") || Path::new(&relative).is_absolute() {
                return Err(
                    format!("blob `{name}` names a file outside the attempt folder").into(),
                );
            }
            let path = self.dir.join(&relative);
            let bytes = fs::read(&path).map_err(|e| json_error(&path, e))?;
            value = value.with_blob(name, Arc::from(bytes));
        }
        Ok(value)
    }

    /// Write the request (and its values' blobs).
    pub fn write_request(&self, request: &AttemptRequest) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("values/{n}")
        };
        let mut inputs = Vec::new();
        for (port, values) in &request.inputs {
            let files = values
                .iter()
                .map(|v| self.write_value(&next(), v))
                .collect::<io::Result<Vec<_>>>()?;
            inputs.push((port.clone(), files));
        }
        let resume = request
            .resume
            .as_ref()
            .map(|r| self.write_value(&next(), r))
            .transpose()?;
        let file = RequestFile {
            format: ATTEMPT_FORMAT,
            run_id: request.run_id.clone(),
            workflow: request.workflow.clone(),
            node: request.node.clone(),
            attempt: request.attempt,
            config: request.config.clone(),
            inputs,
            resume,
            settings: request.settings.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir.join("request.json"), &bytes)
    }

    /// Read the request.
    pub fn read_request(&self) -> Result<AttemptRequest, BoxError> {
        let path = self.dir.join("request.json");
        let bytes = fs::read(&path).map_err(|e| json_error(&path, e))?;
        let file: RequestFile = serde_json::from_slice(&bytes).map_err(|e| json_error(&path, e))?;
        if file.format != ATTEMPT_FORMAT {
            return Err(format!(
                "`{}` has format {}; this version reads {ATTEMPT_FORMAT} (the job runs another \
                 medfusion than the head?)",
                path.display(),
                file.format
            )
            .into());
        }
        let mut inputs = Vec::new();
        for (port, values) in file.inputs {
            let values = values
                .into_iter()
                .map(|v| self.read_value(v))
                .collect::<Result<Vec<_>, _>>()?;
            inputs.push((port, values));
        }
        Ok(AttemptRequest {
            run_id: file.run_id,
            workflow: file.workflow,
            node: file.node,
            attempt: file.attempt,
            config: file.config,
            inputs,
            resume: file.resume.map(|r| self.read_value(r)).transpose()?,
            settings: file.settings,
        })
    }

    /// Write progress number `seq` the node saved.
    pub fn write_progress(&self, seq: u64, value: &SavedValue) -> io::Result<()> {
        let folder = format!("progress/{seq:08}");
        let file = self.write_value(&folder, value)?;
        fs::create_dir_all(self.dir.join(&folder))?;
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(&folder).join("value.json"), &bytes)
    }

    /// The progress saved after number `after`, in order, with their numbers.
    pub fn read_progress_after(&self, after: u64) -> Result<Vec<(u64, SavedValue)>, BoxError> {
        let folder = self.dir.join("progress");
        let Ok(entries) = fs::read_dir(&folder) else {
            return Ok(Vec::new());
        };
        let mut seqs: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&seq| seq > after)
            .collect();
        seqs.sort_unstable();
        let mut out = Vec::new();
        for seq in seqs {
            let path = folder.join(format!("{seq:08}")).join("value.json");
            // Not complete yet (value.json is written last): read it on the next look.
            let Ok(bytes) = fs::read(&path) else { break };
            let file: ValueFile =
                serde_json::from_slice(&bytes).map_err(|e| json_error(&path, e))?;
            out.push((seq, self.read_value(file)?));
        }
        Ok(out)
    }

    /// Write the result, last (its blobs first).
    pub fn write_result(&self, result: &AttemptResult) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let outputs = result
            .outputs
            .iter()
            .enumerate()
            .map(|(i, (port, value))| {
                Ok((
                    port.clone(),
                    self.write_value(&format!("outputs/{i}"), value)?,
                ))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let file = ResultFile {
            format: ATTEMPT_FORMAT,
            outputs,
            error: result.error.clone(),
            retry_with: result.retry_with.clone(),
            usage: result.usage,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir.join("result.json"), &bytes)
    }

    /// The result, once it is there.
    pub fn read_result(&self) -> Result<Option<AttemptResult>, BoxError> {
        let path = self.dir.join("result.json");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(json_error(&path, e)),
        };
        let file: ResultFile = serde_json::from_slice(&bytes).map_err(|e| json_error(&path, e))?;
        let outputs = file
            .outputs
            .into_iter()
            .map(|(port, v)| Ok((port, self.read_value(v)?)))
            .collect::<Result<Vec<_>, BoxError>>()?;
        Ok(Some(AttemptResult {
            outputs,
            error: file.error,
            retry_with: file.retry_with,
            usage: file.usage,
        }))
    }
}

impl AttemptRequest {
    /// The request for the attempt of `ctx` (its inputs saved), with the runner's `settings`.
    pub fn from_context(ctx: &NodeContext, settings: Json) -> Result<AttemptRequest, BoxError> {
        let mut inputs = Vec::new();
        for (port, values) in ctx.inputs().iter() {
            let saved = values
                .iter()
                .map(crate::value::Value::save)
                .collect::<Result<Vec<_>, _>>()?;
            inputs.push((port.to_string(), saved));
        }
        Ok(AttemptRequest {
            run_id: ctx.run_id().to_string(),
            workflow: ctx.plan().workflow().clone(),
            node: ctx.id().to_string(),
            attempt: ctx.attempt(),
            config: ctx.config().clone(),
            inputs,
            resume: ctx.resume_state().cloned(),
            settings,
        })
    }

    /// The plan and attempt to run with [`run_detached`](crate::run_detached), the inputs
    /// restored through `registry`'s codecs.
    pub fn into_detached(
        self,
        registry: &Registry,
    ) -> Result<(Arc<Plan>, DetachedAttempt), BoxError> {
        let plan = medfusion_graph::validate(self.workflow, registry.catalog())?;
        let node = plan
            .index_of(&self.node)
            .ok_or_else(|| format!("the workflow has no node `{}`", self.node))?;
        let mut inputs = Vec::new();
        for (port, values) in self.inputs {
            let restored = values
                .iter()
                .map(|v| {
                    let codec = registry
                        .codec(&v.codec)
                        .ok_or_else(|| format!("no codec `{}` for input `{port}`", v.codec))?;
                    codec.restore(v)
                })
                .collect::<Result<Vec<_>, BoxError>>()?;
            inputs.push((port, restored));
        }
        Ok((
            Arc::new(plan),
            DetachedAttempt {
                run_id: self.run_id,
                node,
                attempt: self.attempt,
                config: self.config,
                inputs,
                resume: self.resume,
            },
        ))
    }
}

impl AttemptResult {
    /// The result of an attempt that ended with `result`: its outputs saved, or its error.
    pub fn from_outcome(
        result: Result<&Outputs, &NodeError>,
        usage: Option<ResourceUsage>,
    ) -> Result<AttemptResult, BoxError> {
        Ok(match result {
            Ok(outputs) => AttemptResult {
                outputs: outputs
                    .values
                    .iter()
                    .map(|(port, v)| Ok((port.clone(), v.save()?)))
                    .collect::<Result<_, BoxError>>()?,
                error: None,
                retry_with: None,
                usage,
            },
            Err(error) => AttemptResult {
                outputs: Vec::new(),
                error: Some(ErrorRecord {
                    kind: format!("{:?}", error.kind()).to_lowercase(),
                    chain: error.chain(),
                }),
                retry_with: error.retry_config().cloned(),
                usage,
            },
        })
    }

    /// The attempt's outputs restored for `ctx` (through its codecs), or its error again.
    pub fn into_outputs(self, ctx: &NodeContext) -> Result<Outputs, NodeError> {
        if let Some(usage) = self.usage {
            ctx.report_usage(usage);
        }
        if let Some(error) = self.error {
            return Err(NodeError::from_record(&error, self.retry_with));
        }
        let mut outputs = Outputs::new();
        for (port, saved) in &self.outputs {
            let value = ctx.restore(saved).map_err(|e| {
                NodeError::with_source(
                    format!("node `{}`: output `{port}` came back unreadable", ctx.id()),
                    e,
                )
            })?;
            outputs.insert(port.clone(), value);
        }
        Ok(outputs)
    }
}
