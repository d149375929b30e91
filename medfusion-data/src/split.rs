//! Splitting samples into train/val/test and assembling the three splits of a dataset.

use std::sync::Arc;

use crate::dataset::{
    DataSplit, DatasetMeta, DatasetSplits, ImageSource, SplitData, SplitName, SplitSizes,
};
use crate::error::DataError;
use crate::rng::SplitMix64;

/// Checks split fractions, naming the keys.
pub(crate) fn check_fractions(val: f64, test: f64) -> Result<(), DataError> {
    for (name, f) in [("val_fraction", val), ("test_fraction", test)] {
        if !(0.0..1.0).contains(&f) {
            return Err(DataError::config(
                name,
                format!("must be in [0, 1), got {f}"),
            ));
        }
    }
    match fraction_issues(val, test).into_iter().next() {
        Some(issue) => Err(DataError::from_issues(vec![issue])),
        None => Ok(()),
    }
}

/// The rules of an image dataset's config beyond each key's range: `channels` (1 to 3 by its
/// range) is 1 or 3, and the split fractions leave training samples.
pub(crate) fn image_dataset_issues(
    channels: Option<usize>,
    val: f64,
    test: f64,
) -> Vec<medfusion_graph::ConfigIssue> {
    let mut issues = Vec::new();
    if channels == Some(2) {
        issues.push(medfusion_graph::ConfigIssue::invalid(
            "channels",
            "must be 1 (grayscale) or 3 (RGB), not 2",
        ));
    }
    issues.extend(fraction_issues(val, test));
    issues
}

/// The rule joining `val_fraction` and `test_fraction` (each is in [0, 1) by its range): they
/// must leave samples for training.
pub(crate) fn fraction_issues(val: f64, test: f64) -> Vec<medfusion_graph::ConfigIssue> {
    if val + test >= 1.0 {
        vec![medfusion_graph::ConfigIssue::invalid(
            "val_fraction",
            format!("plus `test_fraction` must leave training samples (got {val} + {test})"),
        )]
    } else {
        Vec::new()
    }
}

/// Assigns samples to train, val and test, class by class so each split keeps the class
/// proportions; returns the sample indices of each split in ascending order.
pub(crate) fn stratified_split(
    labels: &[u32],
    num_classes: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> [Vec<usize>; 3] {
    let mut out: [Vec<usize>; 3] = Default::default();
    for class in 0..num_classes {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        SplitMix64::derive(seed, &[0x5B11, class as u64]).shuffle(&mut members);
        let n = members.len();
        let mut n_test = (n as f64 * test_fraction).round() as usize;
        let mut n_val = (n as f64 * val_fraction).round() as usize;
        // Keep at least one training sample of every class that has any.
        while n > 0 && n_test + n_val >= n {
            if n_val >= n_test && n_val > 0 {
                n_val -= 1;
            } else if n_test > 0 {
                n_test -= 1;
            } else {
                break;
            }
        }
        out[2].extend_from_slice(&members[..n_test]);
        out[1].extend_from_slice(&members[n_test..n_test + n_val]);
        out[0].extend_from_slice(&members[n_test + n_val..]);
    }
    for split in &mut out {
        split.sort_unstable();
    }
    out
}

/// Like [`stratified_split`], but samples of one group (a patient) always land in the same
/// split: groups are split class by class (a group's class is its most common label), so a
/// fraction is a fraction of each class's groups. Returns sample indices, ascending.
pub(crate) fn grouped_split(
    labels: &[u32],
    groups: &[&str],
    num_classes: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> [Vec<usize>; 3] {
    let mut names: Vec<&str> = groups.to_vec();
    names.sort_unstable();
    names.dedup();
    let index = |g: &str| names.binary_search(&g).unwrap_or(0);
    let mut votes = vec![vec![0usize; num_classes.max(1)]; names.len()];
    for (&label, &group) in labels.iter().zip(groups) {
        if let Some(v) = votes[index(group)].get_mut(label as usize) {
            *v += 1;
        }
    }
    let group_labels: Vec<u32> = votes
        .iter()
        .map(|v| {
            // The most common label; ties go to the lowest class index.
            let best = v.iter().copied().max().unwrap_or(0);
            v.iter().position(|&c| c == best).unwrap_or(0) as u32
        })
        .collect();
    let group_splits = stratified_split(
        &group_labels,
        num_classes,
        val_fraction,
        test_fraction,
        seed,
    );
    let mut split_of = vec![0usize; names.len()];
    for (s, members) in group_splits.iter().enumerate() {
        for &g in members {
            split_of[g] = s;
        }
    }
    let mut out: [Vec<usize>; 3] = Default::default();
    for (i, &group) in groups.iter().enumerate() {
        out[split_of[index(group)]].push(i);
    }
    out
}

/// The samples of one split before they are wrapped.
#[derive(Debug, Default)]
pub(crate) struct SplitParts {
    pub(crate) labels: Vec<u32>,
    pub(crate) ids: Vec<String>,
    pub(crate) images: Option<ImageSource>,
    pub(crate) tabular: Option<Vec<f32>>,
}

impl SplitParts {
    /// The labels and ids of the rows `rows` (images and features are filled in by the caller).
    pub(crate) fn select(labels: &[u32], ids: &[String], rows: &[usize]) -> SplitParts {
        SplitParts {
            labels: rows.iter().map(|&r| labels[r]).collect(),
            ids: rows.iter().map(|&r| ids[r].clone()).collect(),
            images: None,
            tabular: None,
        }
    }
}

/// How the validation and test splits were cut out of the samples, for messages about a
/// split that came out empty.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carving {
    /// The samples that were split.
    pub(crate) samples: usize,
    /// `val_fraction` and `test_fraction`, 0 for a split that was not carved (it came from
    /// the data: a folder, a column, arrays).
    pub(crate) fractions: [f64; 2],
    /// Whether each class was split on its own (stratified), rounding per class.
    pub(crate) per_class: bool,
}

impl Carving {
    /// Why split `s` (1 val, 2 test) is empty, when a fraction above 0 made it so.
    fn empty_reason(&self, s: usize) -> Option<String> {
        let fraction = self.fractions[s - 1];
        if fraction <= 0.0 {
            return None;
        }
        let (key, word) = if s == 1 {
            ("val_fraction", "validation")
        } else {
            ("test_fraction", "test")
        };
        let n = self.samples;
        let rounding = if self.per_class {
            format!("{fraction} of each class rounds to 0 samples")
        } else {
            format!("{fraction} of {n} rounds to 0")
        };
        Some(format!(
            "{n} samples with `{key}: {fraction}` ({rounding}); use more samples or a larger \
             `{key}`, or set `{key}: 0` to go without a {word} split"
        ))
    }
}

/// Wraps three splits with their shared metadata (filling in the split sizes).
///
/// An empty training split is an error, and so is a validation or test split that a
/// fraction above 0 was to carve out but that came out empty (too few samples), naming the
/// sample count and the fraction. A validation or test split that is empty because the data
/// has none (or its fraction is 0) is allowed but logged, since some workflows only train;
/// a node that is fed such a split reports it.
pub(crate) fn assemble(
    mut info: DatasetMeta,
    [train, val, test]: [SplitParts; 3],
    carving: Option<Carving>,
) -> Result<DatasetSplits, DataError> {
    info.split_sizes = SplitSizes {
        train: train.labels.len(),
        val: val.labels.len(),
        test: test.labels.len(),
    };
    let sizes = info.split_sizes;
    let total = sizes.train + sizes.val + sizes.test;
    if train.labels.is_empty() {
        return Err(DataError::EmptySplit {
            dataset: info.source.clone(),
            split: "train".into(),
            reason: if total == 0 {
                "the dataset has no samples".to_owned()
            } else {
                format!(
                    "all {total} samples went to validation ({}) and test ({}); lower \
                     `val_fraction` and `test_fraction`",
                    sizes.val, sizes.test
                )
            },
        });
    }
    for (s, (name, parts)) in [(1, ("val", &val)), (2, ("test", &test))] {
        if !parts.labels.is_empty() {
            continue;
        }
        if let Some(reason) = carving.and_then(|c| c.empty_reason(s)) {
            return Err(DataError::EmptySplit {
                dataset: info.source.clone(),
                split: name.into(),
                reason,
            });
        }
        tracing::warn!(dataset = %info.source, split = name, "split is empty");
    }
    let info = Arc::new(info);
    let wrap = |name: SplitName, p: SplitParts| {
        DataSplit::new(SplitData {
            name,
            info: Arc::clone(&info),
            labels: p.labels,
            ids: p.ids,
            images: p.images,
            tabular: p.tabular,
        })
    };
    Ok(DatasetSplits {
        train: wrap(SplitName::Train, train)?,
        val: wrap(SplitName::Val, val)?,
        test: wrap(SplitName::Test, test)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_complete_and_deterministic() {
        let labels: Vec<u32> = (0..100).map(|i| u32::from(i % 4 == 0)).collect(); // 25 ones
        let [train, val, test] = stratified_split(&labels, 2, 0.2, 0.2, 7);
        assert_eq!((train.len(), val.len(), test.len()), (60, 20, 20));
        let ones = |s: &[usize]| s.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!((ones(&train), ones(&val), ones(&test)), (15, 5, 5));
        let mut all: Vec<usize> = [train.clone(), val.clone(), test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(stratified_split(&labels, 2, 0.2, 0.2, 7)[1], val);
        assert_ne!(stratified_split(&labels, 2, 0.2, 0.2, 8)[1], val);
    }

    #[test]
    fn groups_never_straddle_splits() {
        // 40 patients with 1 to 4 images each, half of them sick.
        let (mut labels, mut groups) = (Vec::new(), Vec::new());
        let names: Vec<String> = (0..40).map(|p| format!("patient-{p}")).collect();
        for (p, name) in names.iter().enumerate() {
            for _ in 0..=(p % 4) {
                labels.push(u32::from(p % 2 == 0));
                groups.push(name.as_str());
            }
        }
        let [train, val, test] = grouped_split(&labels, &groups, 2, 0.2, 0.2, 7);
        assert_eq!(train.len() + val.len() + test.len(), labels.len());
        let patients = |rows: &[usize]| -> std::collections::BTreeSet<&str> {
            rows.iter().map(|&r| groups[r]).collect()
        };
        let (a, b, c) = (patients(&train), patients(&val), patients(&test));
        assert!(a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c));
        // 20% of each class's 20 patients: 4 + 4 in val and in test.
        assert_eq!((b.len(), c.len()), (8, 8));
        assert_eq!(
            grouped_split(&labels, &groups, 2, 0.2, 0.2, 7),
            [train, val, test]
        );
    }

    #[test]
    fn tiny_classes_keep_a_training_sample() {
        let labels = [0, 1, 1];
        let [train, _, _] = stratified_split(&labels, 2, 0.4, 0.4, 1);
        assert!(train.contains(&0));
        assert!(train.iter().any(|&i| labels[i] == 1));
    }

    #[test]
    fn fractions_are_checked() {
        assert!(check_fractions(0.15, 0.15).is_ok());
        let err = check_fractions(0.6, 0.5).unwrap_err().to_string();
        assert!(err.contains("val_fraction"), "{err}");
        assert!(check_fractions(-0.1, 0.0).is_err());
    }
}
