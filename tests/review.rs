//! The label-issue finder on real categories: with a U-Flow or a PatchCore trained on a category's normals and
//! the dataset's (correct) ground truth as an annotator's labels, few correct labels are accused
//! (those the model sees weakly are "cannot confirm", apart); a label deleted and a label drawn
//! where nothing is wrong are both found.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use contrario::project::autosave::Autosaver;
use contrario::project::labels::LabelStore;
use contrario::project::mask::LabelMask;
use contrario::project::model_file::TrainConfig;
use contrario::project::review::{IssueKind, IssueOptions, label_issues};
use contrario::project::training::Family;
use contrario::project::{Project, Split};
use contrario::uflow::model::Model;

/// What the finder said on one category: correct labels judged, accused and unconfirmed, and
/// whether the planted mistakes were found.
#[derive(Debug, Default)]
struct Outcome {
    labels: usize,
    accused: usize,
    unconfirmed: usize,
    found_deleted: bool,
    found_wrong: bool,
    /// Percentiles of the correct labels without a region, and of the planted wrong one.
    percentiles: Vec<f32>,
    wrong_percentile: Option<f32>,
}

fn category(p: &Project, cat: &str, cfg: &TrainConfig) -> Outcome {
    let entries: Vec<_> = p.file.images.iter().filter(|e| e.category == cat).collect();
    let train: Vec<_> = entries
        .iter()
        .filter(|e| e.split == Split::Train)
        .map(|e| p.image_path(e))
        .collect();
    let model = Model::train(
        &train,
        cfg,
        tch::Device::Cpu,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    let mut store = LabelStore::new(Autosaver::new());
    let tests: Vec<_> = entries.iter().filter(|e| e.split == Split::Test).collect();
    let defective = tests.iter().position(|e| e.kind != "good").unwrap();
    let good = tests.iter().position(|e| e.kind == "good").unwrap();
    let mut o = Outcome::default();
    for (i, e) in tests.iter().enumerate() {
        let r = model.infer(&p.image_path(e)).unwrap();
        // The annotator's layer: the ground truth, but for one deleted label and one drawn on
        // a normal image.
        let mut layer = store.opinion(p, &e.id, "gt").unwrap().unwrap();
        let gt = layer.clone();
        if i == defective {
            layer = LabelMask::new(layer.width, layer.height);
        }
        if i == good {
            let (w, h) = (layer.width as usize, layer.height as usize);
            for y in h / 3..h / 3 + h / 10 {
                for x in w / 3..w / 3 + w / 10 {
                    layer.data[y * w + x] = 255;
                }
            }
        }
        let f = label_issues(
            &e.id,
            &r.segmentation.log_nfa,
            Some(&r.anomaly_map),
            &[("ann".into(), layer.clone())],
            IssueOptions::default(),
        );
        for issue in &f.issues {
            match &issue.kind {
                IssueKind::UnlabelledDetection if i == defective => {
                    // It lies on the deleted defect.
                    let [x0, y0, x1, y1] = issue.bbox;
                    let on_defect = (y0..y1)
                        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                        .any(|(x, y)| gt.get(x, y) != 0);
                    o.found_deleted |= on_defect;
                }
                IssueKind::LabelWithoutEvidence { .. } if i == good => o.found_wrong = true,
                IssueKind::LabelWithoutEvidence { .. } => o.accused += 1,
                _ => {}
            }
        }
        for x in f.issues.iter().chain(&f.unconfirmed) {
            if matches!(x.kind, IssueKind::UnlabelledDetection) {
                continue;
            }
            if i == good {
                o.wrong_percentile = x.percentile;
            } else {
                o.percentiles.extend(x.percentile);
            }
        }
        if i != good {
            o.unconfirmed += f.unconfirmed.len();
        }
        if i != defective && i != good {
            o.labels += gt.regions8(false).len();
        }
    }
    o
}

/// The finder with a model of `family` on the shared MVTec categories: both planted mistakes
/// found on each, at most one correct label in ten accused over both.
fn spares_correct_labels_and_finds_both_mistakes(family: Family, epochs: [usize; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mvtec_ad");
    contrario::project::import::import(&root, "mvtec", &data).unwrap();
    let p = Project::open(&root).unwrap();
    let (mut labels, mut accused) = (0, 0);
    for (cat, epochs) in ["leather", "bottle"].into_iter().zip(epochs) {
        let cfg = TrainConfig {
            family,
            epochs,
            ..TrainConfig::default()
        };
        let o = category(&p, cat, &cfg);
        println!("{family:?} on {cat}: {o:?}");
        assert!(
            o.found_deleted,
            "{cat}: the deleted label's defect is not reported"
        );
        assert!(
            o.found_wrong,
            "{cat}: the label drawn on a normal image is not reported"
        );
        assert!(o.labels >= 6, "{cat}: {o:?}");
        labels += o.labels;
        accused += o.accused;
    }
    assert!(
        accused * 10 <= labels,
        "{accused} of {labels} correct labels accused"
    );
}

#[test]
fn label_issues_spare_correct_labels_and_find_a_deleted_and_a_wrong_one() {
    spares_correct_labels_and_finds_both_mistakes(Family::Uflow, [60, 30]);
}

#[test]
fn label_issues_with_a_patchcore_spare_correct_labels_and_find_both_mistakes() {
    spares_correct_labels_and_finds_both_mistakes(Family::Patchcore, [0, 0]);
}
