//! Where each image method sits in the survey of Schmarje et al. (2020, "A survey on semi-, self-
//! and unsupervised learning for image classification"): the setting it trains in and the
//! techniques it combines. Every image method's registry entry declares it
//! ([`super::MethodInfo::survey`]); docs/SSL.md's technique grid is [`grid`]'s output (`codats
//! methods --survey`), and a test compares the two, so the grid cannot drift from the code.

use super::{MethodInfo, Task, REGISTRY};

/// How a method uses labels (the survey's three settings, plus the supervised baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Labelled images only: the baseline of every table.
    Supervised,
    /// Labelled and unlabelled images trained together.
    SemiSupervised,
    /// No labels: clusters or pseudo-classes, evaluated by matching them to the classes.
    Unsupervised,
    /// A pretext task without labels, then a probe or fine-tuning on the labelled images.
    SelfSupervised,
}

impl Setting {
    /// The grid's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Supervised => "supervised (baseline)",
            Setting::SemiSupervised => "semi-supervised",
            Setting::Unsupervised => "unsupervised",
            Setting::SelfSupervised => "self-supervised + fine-tuned",
        }
    }
}

/// The survey's common techniques (its Table 1 columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Technique {
    /// Cross-entropy on (pseudo-)labels.
    CrossEntropy,
    /// Consistency regularisation: similar outputs for perturbed views of one image.
    Consistency,
    /// Entropy minimisation of the predictions on unlabelled images.
    EntropyMin,
    /// Hard or soft pseudo-labels from the network's own predictions.
    PseudoLabels,
    /// Mutual information between views or between images and clusters.
    MutualInformation,
    /// More output classes than true classes (evaluated by matching).
    Overclustering,
    /// Virtual adversarial training.
    Vat,
    /// Mixup of images and labels.
    Mixup,
    /// An exponential-moving-average teacher producing the targets.
    EmaTeacher,
    /// A pretext task (rotation, jigsaw, …) with labels made from the images.
    Pretext,
}

impl Technique {
    /// Every technique, in the grid's column order.
    pub const ALL: [Technique; 10] = [
        Technique::CrossEntropy,
        Technique::Consistency,
        Technique::EntropyMin,
        Technique::PseudoLabels,
        Technique::MutualInformation,
        Technique::Overclustering,
        Technique::Vat,
        Technique::Mixup,
        Technique::EmaTeacher,
        Technique::Pretext,
    ];

    /// The grid's column header (the survey's abbreviation and its meaning).
    pub fn header(self) -> &'static str {
        match self {
            Technique::CrossEntropy => "CE",
            Technique::Consistency => "CR",
            Technique::EntropyMin => "EM",
            Technique::PseudoLabels => "PL",
            Technique::MutualInformation => "MI",
            Technique::Overclustering => "OC",
            Technique::Vat => "VAT",
            Technique::Mixup => "MU",
            Technique::EmaTeacher => "EMA",
            Technique::Pretext => "PT",
        }
    }

    /// What the abbreviation stands for (the grid's legend).
    pub fn meaning(self) -> &'static str {
        match self {
            Technique::CrossEntropy => "cross-entropy",
            Technique::Consistency => "consistency regularisation",
            Technique::EntropyMin => "entropy minimisation",
            Technique::PseudoLabels => "pseudo-labels",
            Technique::MutualInformation => "mutual information",
            Technique::Overclustering => "overclustering",
            Technique::Vat => "virtual adversarial training",
            Technique::Mixup => "mixup",
            Technique::EmaTeacher => "EMA teacher",
            Technique::Pretext => "pretext task",
        }
    }
}

/// An image method's place in the survey: its setting and the techniques its loss combines
/// (as codats implements it with its default parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// How it uses labels.
    pub setting: Setting,
    /// The techniques it combines.
    pub techniques: &'static [Technique],
}

/// The technique grid of every image method in the registry, as markdown: a row per method (in
/// registry order), a column per technique, and the legend.
pub fn grid() -> String {
    let methods: Vec<&MethodInfo> = REGISTRY.iter().filter(|m| m.task == Task::Images).collect();
    let mut out = String::from("| method | setting |");
    for t in Technique::ALL {
        out.push_str(&format!(" {} |", t.header()));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(Technique::ALL.len()));
    out.push('\n');
    for m in methods {
        let survey = m.survey.unwrap_or_else(|| {
            panic!("image method {} declares no survey entry", m.name) // a registry bug, caught by the tests
        });
        out.push_str(&format!("| `{}` | {} |", m.name, survey.setting.as_str()));
        for t in Technique::ALL {
            out.push_str(if survey.techniques.contains(&t) {
                " ✓ |"
            } else {
                "  |"
            });
        }
        out.push('\n');
    }
    out.push('\n');
    let legend: Vec<String> = Technique::ALL
        .iter()
        .map(|t| format!("{} {}", t.header(), t.meaning()))
        .collect();
    out.push_str(&legend.join(" · "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_method_declares_its_place_and_no_adaptation_method_does() {
        for m in REGISTRY {
            match m.task {
                Task::Images => {
                    let s = m
                        .survey
                        .unwrap_or_else(|| panic!("{} has no survey entry", m.name));
                    assert!(
                        s.techniques.contains(&Technique::CrossEntropy),
                        "{}: every image method here trains a classifier by cross-entropy",
                        m.name
                    );
                }
                Task::Adaptation => assert!(m.survey.is_none(), "{}", m.name),
            }
        }
    }

    #[test]
    fn the_grid_has_a_row_per_image_method_and_marks_fixmatch_as_the_survey_does() {
        let g = grid();
        let rows: Vec<&str> = g.lines().filter(|l| l.starts_with("| `")).collect();
        let images = REGISTRY.iter().filter(|m| m.task == Task::Images).count();
        assert_eq!(rows.len(), images);
        // FixMatch: cross-entropy, consistency and pseudo-labels (Schmarje et al., Table 1).
        let fixmatch = rows.iter().find(|r| r.starts_with("| `fixmatch`")).unwrap();
        assert_eq!(
            *fixmatch,
            "| `fixmatch` | semi-supervised | ✓ | ✓ |  | ✓ |  |  |  |  |  |  |"
        );
    }

    /// docs/SSL.md holds the grid between two markers; regenerate it with `codats methods
    /// --survey` when this fails.
    #[test]
    fn docs_ssl_md_holds_the_current_grid() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SSL.md"))
            .expect("docs/SSL.md");
        let begin = "<!-- survey grid: generated by `codats methods --survey` -->\n";
        let end = "<!-- end of survey grid -->";
        let start = doc
            .find(begin)
            .expect("the grid's begin marker in docs/SSL.md")
            + begin.len();
        let stop = doc[start..].find(end).expect("the grid's end marker") + start;
        assert_eq!(
            &doc[start..stop],
            grid(),
            "docs/SSL.md's technique grid is out of date: replace it with `codats methods --survey`"
        );
    }
}
