//! Classification metrics from per-sample class probabilities, and the predictions CSV.
//!
//! Conventions (written down because libraries differ):
//! - The predicted class is the argmax of a sample's probabilities (ties go to the lower
//!   class index, as NumPy's `argmax` does).
//! - Binary problems (two classes) report sensitivity, specificity, precision and F1 of the
//!   positive class, index 1. With more classes they are macro averages over classes.
//! - A metric that is 0/0 for a class (precision of a class never predicted, recall of a
//!   class absent from the labels, ROC AUC when only one class is present) is `None`
//!   (`null` in `metrics.json`) for that class and left out of the macro average; the
//!   average itself is `None` when no class defines it. Nothing panics, nothing is NaN.
//! - ROC AUC is the Mann-Whitney statistic with mid-ranks, so tied scores count one half:
//!   the same value as the area under the trapezoidal ROC curve.
//! - The confusion matrix has true classes as rows and predicted classes as columns.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataError;

/// Metrics of one class against the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class name.
    pub class: String,
    /// Samples of this class.
    pub support: usize,
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN), also called sensitivity.
    pub recall: Option<f64>,
    /// TN / (TN + FP).
    pub specificity: Option<f64>,
    /// 2 TP / (2 TP + FP + FN).
    pub f1: Option<f64>,
    /// One-vs-rest ROC AUC of this class's probability.
    pub roc_auc: Option<f64>,
}

/// What `evaluate.classifier` writes to `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Samples scored.
    pub samples: usize,
    /// Fraction of samples whose argmax is their label.
    pub accuracy: f64,
    /// Binary: AUC of class 1; more classes: macro one-vs-rest AUC.
    pub roc_auc: Option<f64>,
    /// Binary: recall of class 1; more classes: macro recall.
    pub sensitivity: Option<f64>,
    /// Binary: specificity of class 1; more classes: macro specificity.
    pub specificity: Option<f64>,
    /// Binary: precision of class 1; more classes: macro precision.
    pub precision: Option<f64>,
    /// Binary: F1 of class 1; more classes: macro F1.
    pub f1: Option<f64>,
    /// Mean negative log-probability of the true class (probabilities clipped at 1e-7).
    pub log_loss: f64,
    /// Rows: true class; columns: predicted class.
    pub confusion_matrix: Vec<Vec<usize>>,
    /// One entry per class.
    pub per_class: Vec<ClassMetrics>,
}

impl ClassificationMetrics {
    /// Computes every metric from `probabilities` (row-major, `labels.len()` rows of
    /// `classes.len()` values) and the true `labels`.
    pub fn compute(
        probabilities: &[f32],
        labels: &[u32],
        classes: &[String],
    ) -> Result<ClassificationMetrics, DataError> {
        Self::scored(probabilities, labels, classes, argmax)
    }

    /// Like [`ClassificationMetrics::compute`] for two classes, predicting class 1 when its
    /// probability is at least `threshold` (ROC AUC does not depend on it).
    pub fn compute_with_threshold(
        probabilities: &[f32],
        labels: &[u32],
        classes: &[String],
        threshold: f64,
    ) -> Result<ClassificationMetrics, DataError> {
        if classes.len() != 2 {
            return Err(DataError::input(
                "threshold",
                format!("applies to two classes, not {}", classes.len()),
            ));
        }
        if !(0.0..=1.0).contains(&threshold) {
            return Err(DataError::input(
                "threshold",
                format!("must be in [0, 1], got {threshold}"),
            ));
        }
        Self::scored(probabilities, labels, classes, |row| {
            usize::from(f64::from(row[1]) >= threshold)
        })
    }

    fn scored(
        probabilities: &[f32],
        labels: &[u32],
        classes: &[String],
        predict: impl Fn(&[f32]) -> usize,
    ) -> Result<ClassificationMetrics, DataError> {
        let k = classes.len();
        let n = labels.len();
        check_inputs(probabilities, labels, k)?;
        let rows = || probabilities.chunks_exact(k);
        let predicted: Vec<usize> = rows().map(predict).collect();

        let mut confusion = vec![vec![0usize; k]; k];
        for (&l, &p) in labels.iter().zip(&predicted) {
            confusion[l as usize][p] += 1;
        }
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let log_loss = labels
            .iter()
            .zip(rows())
            .map(|(&l, p)| -f64::from(p[l as usize]).clamp(1e-7, 1.0).ln())
            .sum::<f64>()
            / n as f64;

        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
                let (fn_, fp) = (support - tp, predicted_c - tp);
                let tn = n - tp - fn_ - fp;
                let scores: Vec<f64> = rows().map(|p| f64::from(p[c])).collect();
                let positives: Vec<bool> = labels.iter().map(|&l| l as usize == c).collect();
                ClassMetrics {
                    class: classes[c].clone(),
                    support,
                    precision: ratio(tp, tp + fp),
                    recall: ratio(tp, tp + fn_),
                    specificity: ratio(tn, tn + fp),
                    f1: ratio(2 * tp, 2 * tp + fp + fn_),
                    roc_auc: auc_unchecked(&scores, &positives),
                }
            })
            .collect();

        let pick = |f: fn(&ClassMetrics) -> Option<f64>| {
            if k == 2 {
                f(&per_class[1])
            } else {
                macro_mean(per_class.iter().map(f))
            }
        };
        Ok(ClassificationMetrics {
            samples: n,
            accuracy: correct as f64 / n as f64,
            roc_auc: pick(|m| m.roc_auc),
            sensitivity: pick(|m| m.recall),
            specificity: pick(|m| m.specificity),
            precision: pick(|m| m.precision),
            f1: pick(|m| m.f1),
            log_loss,
            confusion_matrix: confusion,
            per_class,
        })
    }

    /// The named metric (`accuracy`, `roc_auc`, `sensitivity`, `specificity`,
    /// `precision`, `f1`, `log_loss`), for early stopping and model selection.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => Some(self.accuracy),
            "roc_auc" | "auc" => self.roc_auc,
            "sensitivity" | "recall" => self.sensitivity,
            "specificity" => self.specificity,
            "precision" => self.precision,
            "f1" => self.f1,
            "log_loss" => Some(self.log_loss),
            _ => None,
        }
    }

    /// Writes the metrics as pretty JSON (the `metrics.json` of `evaluate.classifier`).
    pub fn write_json(&self, path: &Path) -> Result<(), DataError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| DataError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(path, text + "\n").map_err(|source| DataError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn check_inputs(probabilities: &[f32], labels: &[u32], k: usize) -> Result<(), DataError> {
    // First: with no samples there are no probabilities to count the classes from.
    if labels.is_empty() {
        return Err(DataError::input(
            "labels",
            "no samples to score (is the split empty?)",
        ));
    }
    if k < 2 {
        return Err(DataError::input(
            "classes",
            format!("need at least 2, got {k}"),
        ));
    }
    if probabilities.len() != labels.len() * k {
        return Err(DataError::input(
            "probabilities",
            format!(
                "expected {} values ({} samples x {k} classes), got {}",
                labels.len() * k,
                labels.len(),
                probabilities.len()
            ),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= k) {
        return Err(DataError::input(
            "labels",
            format!("sample {i} has label {l}, but there are only {k} classes"),
        ));
    }
    if let Some(i) = probabilities.iter().position(|p| !p.is_finite()) {
        return Err(DataError::input(
            "probabilities",
            format!("sample {} has a non-finite probability", i / k),
        ));
    }
    Ok(())
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn macro_mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let defined: Vec<f64> = values.flatten().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// ROC AUC of `scores` for the samples marked in `positives` (Mann-Whitney U with
/// mid-ranks for ties); `Ok(None)` when either class is absent.
pub fn roc_auc(scores: &[f64], positives: &[bool]) -> Result<Option<f64>, DataError> {
    if scores.len() != positives.len() {
        return Err(DataError::input(
            "scores",
            format!("{} scores for {} samples", scores.len(), positives.len()),
        ));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(DataError::input("scores", "a score is NaN"));
    }
    Ok(auc_unchecked(scores, positives))
}

fn auc_unchecked(scores: &[f64], positives: &[bool]) -> Option<f64> {
    let n_pos = positives.iter().filter(|&&p| p).count();
    let n_neg = positives.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]].total_cmp(&scores[order[i]]).is_eq() {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let pos_in_group = order[i..=j].iter().filter(|&&s| positives[s]).count();
        rank_sum += mid_rank * pos_in_group as f64;
        i = j + 1;
    }
    let (p, q) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Writes per-sample predictions as CSV: `id`, `label` (when known), `predicted`, then
/// `prob_<class>` per class (the `predict` node's output).
///
/// Ids and class names come from the user's files, and a spreadsheet runs a cell that
/// starts with `=`, `+`, `-` or `@` as a formula (CSV injection). As OWASP advises, such a
/// text cell (or one starting with a tab or carriage return) is written with a leading `'`,
/// which spreadsheets take as "text" and do not show: `=HYPERLINK(...)` is written
/// `'=HYPERLINK(...)`. Cells that are plain numbers (`-1`, `+2.5`) are left as they are,
/// since they cannot be formulas; the probabilities are never negative.
pub fn write_predictions_csv(
    path: &Path,
    classes: &[String],
    ids: &[String],
    labels: Option<&[u32]>,
    probabilities: &[f32],
) -> Result<(), DataError> {
    let k = classes.len();
    if k == 0 || probabilities.len() != ids.len() * k {
        return Err(DataError::input(
            "probabilities",
            format!(
                "expected {} values ({} ids x {k} classes)",
                ids.len() * k,
                ids.len()
            ),
        ));
    }
    if labels.is_some_and(|l| l.len() != ids.len()) {
        return Err(DataError::input("labels", "one label per id is needed"));
    }
    let write_err = |e: csv::Error| DataError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut w = csv::Writer::from_path(path).map_err(write_err)?;
    let mut header = vec!["id".to_string()];
    if labels.is_some() {
        header.push("label".into());
    }
    header.push("predicted".into());
    header.extend(classes.iter().map(|c| format!("prob_{c}")));
    w.write_record(&header).map_err(write_err)?;
    for (i, (id, probs)) in ids.iter().zip(probabilities.chunks_exact(k)).enumerate() {
        let mut record = vec![text_cell(id)];
        if let Some(labels) = labels {
            let l = labels[i] as usize;
            record.push(
                classes
                    .get(l)
                    .map_or_else(|| l.to_string(), |c| text_cell(c)),
            );
        }
        record.push(text_cell(&classes[argmax(probs)]));
        record.extend(probs.iter().map(f32::to_string));
        w.write_record(&record).map_err(write_err)?;
    }
    w.flush().map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A text cell from user data, neutralised against formula injection (see
/// [`write_predictions_csv`]).
fn text_cell(text: &str) -> String {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Whether `text` is a decimal number and nothing else (`-1`, `+2.5e3`).
fn is_plain_number(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| format!("c{c}")).collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// Two-class probabilities from the positive class's.
    fn binary(p1: &[f32]) -> Vec<f32> {
        p1.iter().flat_map(|&p| [1.0 - p, p]).collect()
    }

    #[test]
    fn binary_metrics_match_hand_computation() {
        let labels = [1, 1, 0, 0, 1, 0];
        let probs = binary(&[0.9, 0.4, 0.35, 0.6, 0.8, 0.1]);
        let m = ClassificationMetrics::compute(&probs, &labels, &names(2)).unwrap();
        // Predicted 1,0,0,1,1,0: TP 2, FN 1, FP 1, TN 2.
        assert_eq!(m.confusion_matrix, vec![vec![2, 1], vec![1, 2]]);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!(close(m.sensitivity, 2.0 / 3.0));
        assert!(close(m.specificity, 2.0 / 3.0));
        assert!(close(m.precision, 2.0 / 3.0));
        assert!(close(m.f1, 2.0 / 3.0));
        // Positive scores 0.9, 0.4, 0.8 beat 3 + 2 + 3 of the 9 negative pairings.
        assert!(close(m.roc_auc, 8.0 / 9.0));
        let expected_loss = -[0.9f64, 0.4, 0.65, 0.4, 0.8, 0.9]
            .iter()
            .map(|p| p.ln())
            .sum::<f64>()
            / 6.0;
        assert!((m.log_loss - expected_loss).abs() < 1e-6);
        assert_eq!(m.get("auc"), m.roc_auc);
        assert_eq!(m.per_class[0].support, 3);
    }

    #[test]
    fn threshold_moves_the_decision_not_the_auc() {
        let labels = [1, 1, 0, 0, 1, 0];
        let probs = binary(&[0.9, 0.4, 0.35, 0.6, 0.8, 0.1]);
        let m =
            ClassificationMetrics::compute_with_threshold(&probs, &labels, &names(2), 0.3).unwrap();
        // Predicted 1,1,1,1,1,0: TP 3, FN 0, FP 2, TN 1.
        assert_eq!(m.confusion_matrix, vec![vec![1, 2], vec![0, 3]]);
        assert!(close(m.sensitivity, 1.0) && close(m.specificity, 1.0 / 3.0));
        assert!(close(m.precision, 0.6));
        assert!(close(m.roc_auc, 8.0 / 9.0));
        // At exactly the threshold, the positive class wins.
        let m =
            ClassificationMetrics::compute_with_threshold(&binary(&[0.5]), &[1], &names(2), 0.5)
                .unwrap();
        assert!((m.accuracy - 1.0).abs() < 1e-12);
        let err = ClassificationMetrics::compute_with_threshold(&[0.2; 3], &[0], &names(3), 0.5);
        assert!(err.unwrap_err().to_string().contains("two classes"));
    }

    #[test]
    fn tied_scores_count_one_half() {
        // Positives 0.5, 0.5 against negatives 0.5, 0.2: (0.5 + 1) * 2 / 4.
        let auc = roc_auc(&[0.5, 0.5, 0.5, 0.2], &[true, true, false, false]).unwrap();
        assert!(close(auc, 0.75));
        // All scores equal: chance.
        assert!(close(
            roc_auc(&[0.3; 4], &[true, false, true, false]).unwrap(),
            0.5
        ));
        // Perfectly wrong ranking.
        assert!(close(roc_auc(&[0.1, 0.9], &[true, false]).unwrap(), 0.0));
    }

    #[test]
    fn multiclass_metrics_are_macro_averages() {
        let labels = [0, 1, 2, 2, 1];
        let probs = [
            0.7, 0.2, 0.1, //
            0.3, 0.4, 0.3, //
            0.2, 0.5, 0.3, //
            0.1, 0.2, 0.7, //
            0.5, 0.3, 0.2,
        ];
        let m = ClassificationMetrics::compute(&probs, &labels, &names(3)).unwrap();
        assert_eq!(
            m.confusion_matrix,
            vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 1, 1]]
        );
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!(close(m.precision, (0.5 + 0.5 + 1.0) / 3.0));
        assert!(close(m.sensitivity, (1.0 + 0.5 + 0.5) / 3.0));
        assert!(close(m.specificity, (0.75 + 2.0 / 3.0 + 1.0) / 3.0));
        assert!(close(m.f1, (2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0));
        // One-vs-rest AUCs 1, 4/6 and 5.5/6 (class 2 has a tie at 0.3).
        assert!(close(m.per_class[1].roc_auc, 2.0 / 3.0));
        assert!(close(m.per_class[2].roc_auc, 5.5 / 6.0));
        assert!(close(m.roc_auc, 31.0 / 36.0));
    }

    #[test]
    fn absent_positive_class_leaves_undefined_metrics_empty() {
        let labels = [0, 0, 0];
        let probs = binary(&[0.2, 0.7, 0.1]);
        let m = ClassificationMetrics::compute(&probs, &labels, &names(2)).unwrap();
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.sensitivity, None, "no positives: recall is 0/0");
        assert!(close(m.precision, 0.0), "one false positive");
        assert!(close(m.specificity, 2.0 / 3.0));
        assert!(close(m.f1, 0.0));
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["roc_auc"].is_null() && json["sensitivity"].is_null());
        // Never predicting the positive class: precision is 0/0.
        let m = ClassificationMetrics::compute(&binary(&[0.1, 0.2]), &[0, 1], &names(2)).unwrap();
        assert_eq!(m.precision, None);
        assert!(close(m.sensitivity, 0.0) && close(m.f1, 0.0));
    }

    #[test]
    fn multiclass_auc_averages_the_classes_that_define_it() {
        // Class 2 never occurs: its AUC is undefined and left out of the average.
        let labels = [0, 1, 0, 1];
        let probs = [
            0.8, 0.1, 0.1, //
            0.2, 0.7, 0.1, //
            0.6, 0.3, 0.1, //
            0.5, 0.4, 0.1,
        ];
        let m = ClassificationMetrics::compute(&probs, &labels, &names(3)).unwrap();
        assert_eq!(m.per_class[2].roc_auc, None);
        assert_eq!(m.per_class[2].recall, None);
        assert!(close(m.roc_auc, 1.0));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let c = names(2);
        let err = |p: &[f32], l: &[u32]| {
            ClassificationMetrics::compute(p, l, &c)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[0.5, 0.5, 0.1], &[0, 1]).contains("expected 4 values"));
        assert!(err(&[0.5, 0.5], &[2]).contains("label 2"));
        assert!(err(&[f32::NAN, 0.5], &[0]).contains("non-finite"));
        assert!(err(&[], &[]).contains("no samples"));
        assert!(roc_auc(&[0.1], &[true, false]).is_err());
        assert!(ClassificationMetrics::compute(&[1.0], &[0], &names(1)).is_err());
    }

    #[test]
    fn predictions_csv_has_ids_labels_and_probabilities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions.csv");
        let classes = vec!["benign".to_string(), "malignant, stage 1".to_string()];
        let ids = vec!["a".to_string(), "b".to_string()];
        write_predictions_csv(
            &path,
            &classes,
            &ids,
            Some(&[0, 1]),
            &[0.75, 0.25, 0.5, 0.5],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "id,label,predicted,prob_benign,\"prob_malignant, stage 1\""
        );
        assert_eq!(lines[1], "a,benign,benign,0.75,0.25");
        assert_eq!(lines[2], "b,\"malignant, stage 1\",benign,0.5,0.5");
        let err = write_predictions_csv(&path, &classes, &ids, None, &[0.5]).unwrap_err();
        assert!(err.to_string().contains("probabilities"), "{err}");
        let missing = dir.path().join("no/such/dir/p.csv");
        let err = write_predictions_csv(&missing, &classes, &ids, None, &[0.5; 4]).unwrap_err();
        assert!(err.to_string().contains("p.csv"), "{err}");
    }

    #[test]
    fn predictions_csv_neutralises_formula_injection_in_ids_and_classes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions.csv");
        let classes = vec!["=cmd|' /C calc'!A0".to_string(), "-1".to_string()];
        let ids = [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-7",
            "a=b",
        ]
        .map(String::from);
        let labels = [0, 1, 0, 1, 0, 1, 0, 1];
        let probs: Vec<f32> = [0.9, 0.1, 0.2, 0.8].repeat(4);
        write_predictions_csv(&path, &classes, &ids, Some(&labels), &probs).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let column = |c: usize| rows.iter().map(|r| r[c].to_string()).collect::<Vec<_>>();
        assert_eq!(
            column(0),
            [
                "'=HYPERLINK(\"http://x\")",
                "'+1+1",
                "'-2+3",
                "'@SUM(A1)",
                "'\tx",
                "'\rx",
                "-7",
                "a=b"
            ]
        );
        assert_eq!(column(1)[0], "'=cmd|' /C calc'!A0");
        assert_eq!(column(1)[1], "-1", "a number is not a formula");
        assert_eq!(column(2)[0], "'=cmd|' /C calc'!A0");
        for row in &rows {
            for cell in row {
                assert!(!cell.starts_with(['=', '+', '@', '\t', '\r']), "{cell:?}");
            }
        }
    }

    #[test]
    fn metrics_json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let m = ClassificationMetrics::compute(&binary(&[0.9, 0.2]), &[1, 0], &names(2)).unwrap();
        m.write_json(&path).unwrap();
        let back: ClassificationMetrics =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, m);
        assert!(close(back.roc_auc, 1.0));
    }
}
