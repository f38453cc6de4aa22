//! Review in the window, driven as a user would on a copy of the demo project: the image list's
//! filter, order and badges; verdicts by key into the journal, the reviewer's name kept once,
//! next unreviewed; label issues opened, accepted and dismissed, the dismissal still there after
//! the project is opened again.

use std::path::{Path, PathBuf};

use contrario::app::AppCommand;
use contrario::app::annotation::LabelCommand;
use contrario::app::review::{ReviewCommand, SortKey};
use contrario::project::Project;
use contrario::project::review::{IssueKind, Verdict};
use egui::Modifiers;
use egui_kittest::kittest::Queryable;

mod window;
use window::{H, demo_copy, index_of, key, select, settle};

fn harness(project: PathBuf, prefs: &Path) -> H {
    window::harness(project, Some(prefs), (1200.0, 760.0))
}

/// The review journal's lines on disk.
fn journal(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("journal/reviews.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_list_filters_sorts_and_keys_step_inside_it() {
    let (dir, root) = demo_copy();
    let mut h = harness(root, &dir.path().join("prefs.ron"));
    let total = h.state().state.review.rows.len();
    assert_eq!(total, 54);
    assert_eq!(
        h.state().state.review.facts.len(),
        54,
        "the analysis landed"
    );
    // Only where annotators disagree, from the filter menu.
    h.get_by_label("filter").click();
    h.run_steps(2);
    h.get_by_label("only disagreements").click();
    h.run_steps(2);
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    let st = &h.state().state;
    let rows = st.review.rows.clone();
    assert!(
        !rows.is_empty() && rows.len() < total,
        "{} of {total}",
        rows.len()
    );
    for &i in &rows {
        assert!(st.review.facts[i].disagreement(), "row {i}");
    }
    h.get_by_label(&format!("{} of {total} images", rows.len()));
    // Sorted by disagreement: the worst agreement first.
    h.state_mut().apply(AppCommand::Review(ReviewCommand::Sort(
        SortKey::Disagreement,
    )));
    h.run_steps(2);
    let st = &h.state().state;
    let rows = st.review.rows.clone();
    let ious: Vec<f64> = rows
        .iter()
        .map(|&i| st.review.facts[i].worst_iou.unwrap())
        .collect();
    assert!(ious.windows(2).all(|w| w[0] <= w[1]), "{ious:?}");
    // The keys step through the filtered list, in its order.
    h.state_mut().apply(AppCommand::Select(rows[0]));
    h.run_steps(2);
    key(&mut h, egui::Key::J, Modifiers::NONE);
    assert_eq!(h.state().state.selected, Some(rows[1]));
    key(&mut h, egui::Key::K, Modifiers::NONE);
    assert_eq!(h.state().state.selected, Some(rows[0]));
    settle(&mut h);
    h.snapshot("filtered_list");
}

#[test]
fn a_verdict_by_key_asks_for_the_name_where_it_is_is_signed_and_moves_down_the_queue() {
    let (dir, root) = demo_copy();
    let prefs = dir.path().join("config/preferences.ron");
    let mut h = harness(root.clone(), &prefs);
    h.get_by_label("Queue").click();
    h.run_steps(2);
    // The first of the queue: the most disputed image.
    let queue = h.state().state.review.queue.clone();
    assert!(queue.len() > 10);
    h.state_mut().apply(AppCommand::Select(queue[0]));
    settle(&mut h);
    // No name yet: the verdict asks for it in the panel, the field ready for the keys, and waits.
    key(&mut h, egui::Key::D, Modifiers::NONE);
    h.get_by_label_contains("Your name, to sign the verdict defective");
    assert!(journal(&root).is_empty());
    assert_eq!(h.state().state.selected, Some(queue[0]));
    h.get_by_role(egui::accesskit::Role::TextInput)
        .type_text("Tess");
    h.run_steps(2);
    key(&mut h, egui::Key::Enter, Modifiers::NONE);
    settle(&mut h);
    assert!(std::fs::read_to_string(&prefs).unwrap().contains("Tess"));
    // Signed and recorded on the image it was given for, then on to the queue's next.
    assert!(h.state().state.labels.flush().is_empty());
    let j = journal(&root);
    assert_eq!(j.len(), 1, "{j:?}");
    let first = &h.state().state.project.as_ref().unwrap().file.images[queue[0]];
    assert_eq!(j[0]["image"], first.id.as_str());
    assert_eq!(j[0]["verdict"], "defective");
    assert_eq!(j[0]["reviewer"], "Tess");
    assert_eq!(h.state().state.selected, Some(queue[1]));
    h.get_by_label(&format!("1 of {} reviewed", queue.len()));
    // One key an image from now on.
    key(&mut h, egui::Key::N, Modifiers::NONE);
    assert!(h.state().state.labels.flush().is_empty());
    assert_eq!(journal(&root).len(), 2);
    let second = h.state().state.project.as_ref().unwrap().file.images[queue[1]]
        .id
        .clone();
    assert_eq!(
        h.state().state.review.verdicts.get(&second),
        Some(&Verdict::Normal)
    );
    assert_eq!(h.state().state.selected, Some(queue[2]));
    // Next unreviewed from elsewhere: back to the queue's first without a verdict.
    h.state_mut().apply(AppCommand::Select(queue[0]));
    key(&mut h, egui::Key::J, Modifiers::SHIFT);
    assert_eq!(h.state().state.selected, Some(queue[2]));
    settle(&mut h);
    // The queue names each image by its place in the project, with its thumbnail.
    let p = h.state().state.project.as_ref().unwrap();
    let name = p.file.images[queue[3]].display_name();
    assert!(name.contains("/test/"), "{name}");
    h.get_by_label(&name);
    h.snapshot("review_panel");
    // The name is asked once: a new window knows it.
    let h2 = harness(root, &prefs);
    assert_eq!(h2.state().state.review.reviewer.as_deref(), Some("Tess"));
    // And the verdicts are read back from the journal.
    assert_eq!(h2.state().state.review.verdicts.len(), 2);
}

#[test]
fn a_project_opens_on_its_model_and_shows_cached_results_as_soon_as_an_image_is_selected() {
    let (dir, root) = demo_copy();
    let prefs = dir.path().join("prefs.ron");
    let mut h = harness(root.clone(), &prefs);
    // The demo ships a U-Flow: the detector starts on it, not on the training-free one.
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
    h.state_mut()
        .apply(AppCommand::RunDetector { filtered: false });
    settle(&mut h);
    assert!(h.state().state.run.is_none());
    // Any image selected after the run shows its result at once, with no key pressed.
    for id in [
        "wood/test/hole/002",
        "fabric/test/stain/001",
        "leather/train/good/003",
    ] {
        let i = select(&mut h, id);
        let d = &h.state().state.detections[&i];
        assert!(d.summary().ends_with("from the cache"), "{}", d.summary());
        assert_eq!(
            h.state().result_drawn(),
            Some(i),
            "{id} drawn with its result"
        );
        h.get_by_label_contains("region(s)");
    }
    // Memory stays flat over a long review: only the newest results stay in memory.
    let all: Vec<usize> = (0..h.state().state.image_count()).collect();
    for &i in &all {
        h.state_mut().apply(AppCommand::Select(i));
        h.run_steps(1);
    }
    settle(&mut h);
    assert!(h.state().state.detections.len() <= 17);
    // The detector chosen is kept in the project: reopened, the window starts on it.
    h.state_mut().apply(AppCommand::SetDetector(None));
    assert!(h.state().state.labels.flush().is_empty());
    drop(h);
    let h = harness(root.clone(), &prefs);
    assert_eq!(h.state().state.detector, None);
    drop(h);
    let mut p = Project::open(&root).unwrap();
    p.file.settings.detector = Some(contrario::project::DetectorChoice::Model("gone".into()));
    p.save().unwrap();
    drop(p);
    // A model that is no more: the most recently trained one instead.
    let h = harness(root, &prefs);
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
}

#[test]
fn label_issues_open_accept_and_dismiss_and_a_dismissal_survives_reopening() {
    let (dir, root) = demo_copy();
    let prefs = dir.path().join("prefs.ron");
    // Nobody labelled this hole: the detector's region is an unlabelled detection.
    let hole = "leather/test/hole/004";
    let mut p = Project::open(&root).unwrap();
    p.file
        .images
        .iter_mut()
        .find(|e| e.id == hole)
        .unwrap()
        .labels
        .clear();
    p.save().unwrap();
    drop(p);
    let mut h = harness(root.clone(), &prefs);
    // The demo opens on its U-Flow: the issues are that model's.
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
    // Ana marks a normal structure of this image as a stain: a mark without evidence.
    let good = "leather/test/good/001";
    for id in [hole, good] {
        select(&mut h, id);
        key(&mut h, egui::Key::R, Modifiers::NONE);
        settle(&mut h);
    }
    h.get_by_label_contains("Issues (").click();
    h.run_steps(2);
    let issues = h.state().state.review.issues.clone();
    let hole_i = index_of(&h, hole);
    let good_i = index_of(&h, good);
    let unlabelled = issues
        .iter()
        .position(|(i, x)| *i == hole_i && x.kind == IssueKind::UnlabelledDetection)
        .expect("the hole is an unlabelled detection");
    let without = issues
        .iter()
        .position(|(i, x)| {
            *i == good_i
                && x.kind
                    == IssueKind::LabelWithoutEvidence {
                        annotator: "ana".into(),
                    }
        })
        .expect("Ana's stain has no evidence");
    // Open the hole's issue, named by its place in the project: its image, framed with room
    // around the region, the detection drawn over it.
    select(&mut h, "leather/test/good/000");
    h.state_mut().apply(AppCommand::ShowHeatmap(false));
    let titles = h
        .query_all_by_label_contains("leather/test/hole/004.png")
        .count();
    assert!(titles >= 1);
    h.state_mut()
        .apply(AppCommand::Label(LabelCommand::SetAnnotator(Some(
            "ana".into(),
        ))));
    h.state_mut()
        .apply(AppCommand::Review(ReviewCommand::OpenIssue(unlabelled)));
    settle(&mut h);
    assert_eq!(h.state().state.selected, Some(hole_i));
    let (zoom, _) = h.state().view_state();
    assert!(
        zoom <= contrario::app::review::ISSUE_MAX_ZOOM,
        "zoomed to {:.0} %",
        zoom * 100.0
    );
    let region = issues[unlabelled].1.clone();
    let [x0, y0, x1, y1] = region.bbox;
    let (a, b) = (
        h.state().screen_of(x0 as f32, y0 as f32).unwrap(),
        h.state().screen_of(x1 as f32, y1 as f32).unwrap(),
    );
    let viewer = h.get_by_label("Image viewer").rect();
    assert!(
        viewer.contains(a) && viewer.contains(b),
        "the region {:?} is on screen",
        region.bbox
    );
    // A quarter of the image at least is shown around it (256 px: 64 px or more).
    assert!(viewer.width() / zoom >= 64.0 && viewer.height() / zoom >= 64.0);
    assert!(h.state().state.show_heatmap, "the detection is shown");
    assert_eq!(h.state().result_drawn(), Some(hole_i));
    assert_eq!(
        h.state().state.label_layer.as_deref(),
        Some("ana"),
        "the layer an acceptance writes"
    );
    h.snapshot("label_issues");
    // Accept it into Ana's layer, from the panel: nobody said who reviews, so the panel asks
    // right there, and the acceptance goes ahead once the name is given.
    let k = h
        .state()
        .state
        .review
        .issues
        .iter()
        .position(|x| x.1 == region)
        .unwrap();
    let button = h.state().state.review.issues[..k]
        .iter()
        .filter(|x| x.1.kind == IssueKind::UnlabelledDetection)
        .count();
    h.get_all_by_label("Accept as defect")
        .nth(button)
        .unwrap()
        .click();
    h.run_steps(2);
    h.get_by_label_contains("Your name, to sign the acceptance of this issue");
    assert!(h.state().state.review.issues.iter().any(|x| x.1 == region));
    h.get_by_role(egui::accesskit::Role::TextInput)
        .type_text("Tess");
    h.run_steps(2);
    h.get_by_label("Sign").click();
    settle(&mut h);
    assert_eq!(h.state().state.review.reviewer.as_deref(), Some("Tess"));
    let ana = h.state().state.labels.loaded(hole, "ana").unwrap().clone();
    let (w, _) = (ana.width, ana.height);
    let cx = ((x0 + x1) / 2) as usize;
    let cy = ((y0 + y1) / 2) as usize;
    assert!(ana.data.iter().any(|&v| v != 0));
    assert!(
        ana.data[cy * w as usize + cx] != 0 || ana.data.iter().filter(|&&v| v != 0).count() > 10
    );
    assert!(
        h.state().state.review.issues.iter().all(|x| x.1 != region),
        "an accepted issue leaves the list"
    );
    // Dismiss Ana's stain from the panel.
    let stain = issues[without].1.clone();
    let k = h
        .state()
        .state
        .review
        .issues
        .iter()
        .position(|x| x.1 == stain)
        .unwrap();
    h.state_mut()
        .apply(AppCommand::Review(ReviewCommand::DismissIssue(k)));
    settle(&mut h);
    assert!(h.state().state.labels.flush().is_empty());
    let lines = std::fs::read_to_string(root.join("journal/issues.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.contains("\"dismissed\"") && lines.contains("\"accepted\""));
    drop(h);
    // Opened again, with the detector run again: the dismissed issue stays away.
    let mut h = harness(root, &prefs);
    select(&mut h, good);
    key(&mut h, egui::Key::R, Modifiers::NONE);
    settle(&mut h);
    assert!(
        h.state().state.review.issues.iter().all(|x| !(x.0 == good_i
            && x.1.kind
                == IssueKind::LabelWithoutEvidence {
                    annotator: "ana".into()
                })),
        "{:?}",
        h.state().state.review.issues
    );
}

#[test]
fn import_a_dataset_and_export_masks_from_the_window() {
    let (dir, root) = demo_copy();
    let mut h = harness(root, &dir.path().join("prefs.ron"));
    let stare = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/stare");
    let new = dir.path().join("stare-project");
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("New project from a dataset…").click();
    h.run_steps(2);
    // Project, dataset, two annotators' mask folders, in the form's fields in order.
    h.get_by_label("format").click();
    h.run_steps(2);
    h.get_by_label("folder").click();
    h.run_steps(2);
    for _ in 0..2 {
        h.get_by_label("Add an annotator's masks").click();
        h.run_steps(4);
    }
    let texts = [
        new.display().to_string(),
        stare.join("images").display().to_string(),
        "ah".to_string(),
        stare.join("labels-ah").display().to_string(),
        "vk".to_string(),
        stare.join("labels-vk").display().to_string(),
    ];
    for (k, text) in texts.iter().enumerate() {
        let fields: Vec<_> = h
            .get_all_by_role(egui::accesskit::Role::TextInput)
            .collect();
        fields[k].focus();
        fields[k].type_text(text);
        h.run_steps(2);
    }
    h.get_by_label("Import").click();
    h.run_steps(2);
    settle(&mut h);
    h.get_by_label_contains("Imported 10 images");
    h.get_by_label_contains("10 of ah's masks; 10 of vk's masks");
    let st = &h.state().state;
    let p = st.project.as_ref().unwrap();
    assert_eq!(
        std::fs::canonicalize(&p.root).unwrap(),
        std::fs::canonicalize(&new).unwrap()
    );
    assert_eq!(p.file.images.len(), 10);
    assert!(p.annotator("ah").is_some() && p.annotator("vk").is_some());
    // Export ah's masks in the MVTec layout.
    let out = dir.path().join("masks-out");
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Export…").click();
    h.run_steps(2);
    h.get_by_label("layer").click();
    h.run_steps(2);
    h.get_by_label("ah").click();
    h.run_steps(2);
    let field = h.get_by_label("output folder");
    field.focus();
    field.type_text(&out.display().to_string());
    h.run_steps(2);
    h.get_by_label("Export").click();
    h.run_steps(2);
    settle(&mut h);
    h.get_by_label_contains("Wrote 10 masks to");
    let written = walk(&out);
    assert_eq!(written.len(), 10, "{written:?}");
    assert!(
        written
            .iter()
            .all(|p| p.to_string_lossy().ends_with("_mask.png"))
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
