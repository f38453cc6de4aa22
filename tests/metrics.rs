//! Metrics against values scikit-learn computed on the same inputs (tests/fixtures/metrics.json,
//! made by scripts/metrics_fixture.py).

use contrario::stats::metrics::{auroc, iou};

#[test]
fn auroc_and_iou_match_scikit_learn() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for c in cases {
        let scores: Vec<f32> = c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let labels: Vec<bool> = c["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_bool().unwrap())
            .collect();
        let got = auroc(&scores, &labels).unwrap();
        let want = c["auroc"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "auroc {got} vs sklearn {want}");
        let t = c["iou_threshold"].as_f64().unwrap() as f32;
        let pred: Vec<bool> = scores.iter().map(|&s| s > t).collect();
        let got = iou(&pred, &labels);
        assert!((got - c["iou"].as_f64().unwrap()).abs() < 1e-9);
    }
}
