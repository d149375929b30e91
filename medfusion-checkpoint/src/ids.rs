//! Path-safe ids and the names of checkpoint directories.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Longest id accepted: room is left for the `_<YYYYMMDD_HHMMSS>_<n>` and
/// `_optimizer.safetensors` suffixes within a 255-byte file name.
pub const MAX_ID_LEN: usize = 128;

/// Check that `id` can be used as (part of) one file name inside the checkpoint
/// directory: ASCII letters, digits, `_`, `-` and `.`, not starting with `.`, without
/// `..`, at most [`MAX_ID_LEN`] bytes.
///
/// `kind` names the id in the error ("workflow id", "node id", ...).
pub fn validate_id(kind: &'static str, id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_ID_LEN {
        "it is longer than 128 bytes"
    } else if id.starts_with('.') {
        "it starts with `.`"
    } else if id.contains("..") {
        "it contains `..`"
    } else if id.contains(['/', '\\']) {
        "it contains a path separator"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        "it contains a character other than letters, digits, `_`, `-` and `.`"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId {
        kind,
        id: id.to_string(),
        reason,
    })
}

/// A moment, as the manifest records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) unix_ms: u64,
}

impl Stamp {
    pub(crate) fn now() -> Stamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Stamp {
            unix_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.unix_ms)
    }

    fn utc(self) -> OffsetDateTime {
        let nanos = i128::from(self.unix_ms) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `YYYYMMDD_HHMMSS` in UTC (UTC so that names sort the same on every machine).
    pub(crate) fn dir_suffix(self) -> String {
        let t = self.utc();
        format!(
            "{:04}{:02}{:02}_{:02}{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// RFC 3339 in UTC with milliseconds: `2025-01-31T12:00:05.123Z`.
    pub(crate) fn rfc3339(self) -> String {
        let t = self.utc();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

/// The directory name of the `attempt`-th checkpoint of `workflow_id` started at
/// `stamp`: `<workflow_id>_<YYYYMMDD_HHMMSS>`, then `_2`, `_3`, ... when taken.
pub(crate) fn checkpoint_name(workflow_id: &str, stamp: Stamp, attempt: u32) -> String {
    let base = format!("{workflow_id}_{}", stamp.dir_suffix());
    if attempt <= 1 {
        base
    } else {
        format!("{base}_{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("train-run_01.v2", true)]
    #[case::empty("", false)]
    #[case::dot_dot("..", false)]
    #[case::inner_dot_dot("a..b", false)]
    #[case::hidden(".tmp", false)]
    #[case::slash("a/b", false)]
    #[case::backslash("a\\b", false)]
    #[case::space("a b", false)]
    #[case::unicode("lésion", false)]
    #[case::nul("a\0b", false)]
    #[case::too_long(&"x".repeat(129), false)]
    #[case::longest(&"x".repeat(128), true)]
    fn ids(#[case] id: &str, #[case] ok: bool) {
        let result = validate_id("node id", id);
        assert_eq!(result.is_ok(), ok, "{result:?}");
        if let Err(e) = result {
            assert!(e.to_string().starts_with("invalid node id `"), "{e}");
        }
    }

    #[test]
    fn names_and_times() {
        // 2024-02-29T23:59:58.007Z
        let stamp = Stamp {
            unix_ms: 1_709_251_198_007,
        };
        assert_eq!(stamp.dir_suffix(), "20240229_235958");
        assert_eq!(stamp.rfc3339(), "2024-02-29T23:59:58.007Z");
        assert_eq!(checkpoint_name("wf", stamp, 1), "wf_20240229_235958");
        assert_eq!(checkpoint_name("wf", stamp, 3), "wf_20240229_235958_3");
        assert_eq!(
            stamp.system_time(),
            UNIX_EPOCH + Duration::from_millis(1_709_251_198_007)
        );
    }
}
