//! The label-issue finder on a real category: with a U-Flow trained on MVTec leather's normals
//! and the dataset's (correct) ground truth as an annotator's labels, few correct labels are
//! accused; a label deleted and a label drawn where nothing is wrong are both found.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use contrario::project::autosave::Autosaver;
use contrario::project::labels::LabelStore;
use contrario::project::mask::LabelMask;
use contrario::project::model_file::TrainConfig;
use contrario::project::review::{IssueKind, IssueOptions, label_issues};
use contrario::project::{Project, Split};
use contrario::uflow::model::Model;

#[test]
fn label_issues_spare_correct_labels_and_find_a_deleted_and_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mvtec_ad");
    contrario::project::import::import(&root, "mvtec", &data).unwrap();
    let p = Project::open(&root).unwrap();
    let leather: Vec<_> = p
        .file
        .images
        .iter()
        .filter(|e| e.category == "leather")
        .collect();
    let train: Vec<_> = leather
        .iter()
        .filter(|e| e.split == Split::Train)
        .map(|e| p.image_path(e))
        .collect();
    let model = Model::train(
        &train,
        &TrainConfig::default(),
        tch::Device::Cpu,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    let mut store = LabelStore::new(Autosaver::new());
    let tests: Vec<_> = leather.iter().filter(|e| e.split == Split::Test).collect();
    let defective = tests.iter().position(|e| e.kind != "good").unwrap();
    let good = tests.iter().position(|e| e.kind == "good").unwrap();
    let (mut flagged_correct, mut labels) = (0, 0);
    let (mut found_deleted, mut found_wrong) = (false, false);
    for (i, e) in tests.iter().enumerate() {
        let log_nfa = model.infer(&p.image_path(e)).unwrap().segmentation.log_nfa;
        // The annotator's layer: the ground truth, but for one deleted label and one drawn on
        // a normal image.
        let mut layer = store.opinion(&p, &e.id, "gt").unwrap().unwrap();
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
        let issues = label_issues(
            &e.id,
            &log_nfa,
            &[("ann".into(), layer)],
            IssueOptions::default(),
        );
        for issue in &issues {
            match &issue.kind {
                IssueKind::UnlabelledDetection if i == defective => {
                    // It lies on the deleted defect.
                    let [x0, y0, x1, y1] = issue.bbox;
                    let on_defect = (y0..y1)
                        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                        .any(|(x, y)| gt.get(x, y) != 0);
                    found_deleted |= on_defect;
                }
                IssueKind::LabelWithoutEvidence { .. } if i == good => found_wrong = true,
                IssueKind::LabelWithoutEvidence { .. } => flagged_correct += 1,
                _ => {}
            }
        }
        if i != defective && i != good && !gt.is_empty() {
            labels += 1;
        }
    }
    assert!(found_deleted, "the deleted label's defect is not reported");
    assert!(
        found_wrong,
        "the label drawn on a normal image is not reported"
    );
    assert!(labels >= 8, "{labels}");
    assert!(
        flagged_correct * 10 <= labels,
        "{flagged_correct} of {labels} correct labels accused"
    );
}
