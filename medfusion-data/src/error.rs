//! The error type of the data loaders and metrics.

use std::path::PathBuf;

/// What went wrong while loading, batching or scoring data.
///
/// Every variant names the thing at fault (a path, a column, a config field, a split), so
/// the message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A config value is out of range or inconsistent with another.
    #[error("invalid {} config: `{field}` {reason}", node_type.as_deref().unwrap_or("dataset"))]
    InvalidConfig {
        /// The node type whose config it is, when known (`dataset.csv`).
        node_type: Option<String>,
        /// The config key (dotted for nested keys).
        field: String,
        /// What is wrong with it, in words.
        reason: String,
    },

    /// A file or folder could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A folder the dataset needs does not exist.
    #[error("folder `{}` does not exist", path.display())]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },

    /// An image folder has no class sub-folders.
    #[error(
        "no class folders in `{}` (expected `<class>/*.png|jpg` inside it, or `train/`, `val/`, \
         `test/` holding them)",
        path.display()
    )]
    NoClasses {
        /// The folder searched.
        path: PathBuf,
    },

    /// A folder that should hold images holds none.
    #[error("no images (.png, .jpg, .jpeg) in `{}`", path.display())]
    NoImages {
        /// The folder searched.
        path: PathBuf,
    },

    /// The split folders do not list the same classes.
    #[error("class folders of split `{split}` differ from `train`: {detail}")]
    ClassMismatch {
        /// The split whose classes differ.
        split: String,
        /// Which classes are missing or extra.
        detail: String,
    },

    /// An image file is corrupt, truncated or in an unsupported format.
    #[error("cannot decode image `{}`", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A CSV file could not be parsed.
    #[error("cannot parse CSV `{}`", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: csv::Error,
    },

    /// A column the config names is not in the table.
    #[error("column `{column}` not found in `{}` (columns: {available})", path.display())]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file has, comma separated.
        available: String,
    },

    /// A table cell holds a value that cannot be used.
    #[error("`{}` line {line}, column `{column}`: {reason} (value `{value}`)", path.display())]
    BadValue {
        /// The CSV file.
        path: PathBuf,
        /// The 1-based line in the file.
        line: u64,
        /// The column.
        column: String,
        /// The cell's text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An `.npz` archive is unreadable or not a NumPy archive.
    #[error("cannot read NumPy archive `{}`", path.display())]
    Npz {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An array the loader needs is not in the `.npz` archive.
    #[error("array `{array}` not found in `{}` (arrays: {available})", path.display())]
    MissingArray {
        /// The archive.
        path: PathBuf,
        /// The missing array.
        array: String,
        /// The arrays the archive holds, comma separated.
        available: String,
    },

    /// An array has a shape or element type the loader cannot use.
    #[error("array `{array}` in `{}`: {reason}", path.display())]
    BadArray {
        /// The archive.
        path: PathBuf,
        /// The array.
        array: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Image and table rows of a multimodal dataset do not match up.
    #[error(
        "{count} id(s) of the {side} have no match in the {other} (first: {examples}); set \
         `on_unmatched: drop` to train on the matched ones only"
    )]
    UnmatchedIds {
        /// Where the unmatched ids come from (`images` or `table`).
        side: String,
        /// The other side.
        other: String,
        /// How many ids are unmatched.
        count: usize,
        /// The first few unmatched ids, comma separated.
        examples: String,
    },

    /// A split ended up with no samples.
    #[error("the {} split of `{dataset}` is empty: {reason}", split_word(split))]
    EmptySplit {
        /// The dataset (its source, for example its folder).
        dataset: String,
        /// The empty split.
        split: String,
        /// How it came to be empty (samples, fraction) and what to do.
        reason: String,
    },

    /// One file was reached by two paths (a link, or a hard link), so it would count twice.
    #[error(
        "`{}` and `{}` are the same file; an image may be used once (in one split, under one \
         class): remove one of them, or the link",
        first.display(),
        second.display()
    )]
    DuplicateFile {
        /// The path it was first found by.
        first: PathBuf,
        /// The second path.
        second: PathBuf,
    },

    /// An image's header claims more pixels than the dataset allows.
    #[error(
        "image `{}` is {width}x{height} ({} pixels), more than `max_image_pixels` = {limit}; \
         raise `max_image_pixels` in the dataset's config to read it",
        path.display(),
        u128::from(*width) * u128::from(*height)
    )]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Its width in the header.
        width: u64,
        /// Its height in the header.
        height: u64,
        /// The limit, in pixels.
        limit: u64,
    },

    /// A DICOM file that cannot be read or decoded.
    #[error("DICOM file `{}`: {reason}", path.display())]
    Dicom {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A NIfTI file that cannot be read.
    #[error("NIfTI file `{}`: {reason}", path.display())]
    Nifti {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A DICOM file whose pixels are encoded in a transfer syntax this build cannot decode.
    #[error(
        "DICOM file `{}`: transfer syntax {uid} is {reason}; convert it (e.g. `gdcmconv --raw`) or set `on_error: skip`",
        path.display()
    )]
    UnsupportedTransferSyntax {
        /// The file.
        path: PathBuf,
        /// The transfer syntax UID.
        uid: String,
        /// Its name and why it cannot be decoded.
        reason: String,
    },

    /// Inputs to a metric or a batch disagree in length or range.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was given (for example `probabilities`).
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A data-loading worker thread died.
    #[error("data loader worker {worker} stopped unexpectedly")]
    WorkerFailed {
        /// The worker's index.
        worker: usize,
    },
}

impl DataError {
    /// Shorthand for [`DataError::InvalidConfig`].
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::InvalidConfig {
            node_type: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The first of the problems a config check found, as [`DataError::InvalidConfig`].
    pub(crate) fn from_issues(issues: Vec<medfusion_graph::ConfigIssue>) -> DataError {
        let first = issues.into_iter().next();
        DataError::InvalidConfig {
            node_type: None,
            field: first
                .as_ref()
                .map(|i| i.key().to_owned())
                .unwrap_or_default(),
            reason: first.map(|i| i.reason()).unwrap_or_default(),
        }
    }

    /// Shorthand for [`DataError::InvalidInput`].
    pub fn input(what: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`DataError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `validation` for `val`, else the split's own name.
fn split_word(split: &str) -> &str {
    if split == "val" { "validation" } else { split }
}

/// Joins the first `max` items with `, `, adding `, ...` when there are more.
pub(crate) fn list_some<I, S>(items: I, max: usize) -> String
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i == max {
            out.push_str(", ...");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item.to_string());
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}
