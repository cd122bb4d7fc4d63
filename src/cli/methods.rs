//! `codats methods`: the registry as a user reads it.

use crate::methods::{MethodInfo, TargetUse, Task, REGISTRY};

/// `codats methods` flags.
#[derive(Debug, clap::Args)]
pub struct MethodsArgs {
    /// Print the image methods' technique grid (Schmarje et al. 2020's setting and techniques,
    /// from the registry; docs/SSL.md holds this output) instead of the list.
    #[arg(long)]
    pub survey: bool,
}

fn adaptation_line(m: &MethodInfo) -> String {
    let target = match m.needs.target {
        TargetUse::None => "no target",
        TargetUse::Unlabelled => "unlabelled target",
        TargetUse::Labelled => "labelled target",
    };
    let sources = if m.needs.sources {
        "labelled sources, "
    } else {
        ""
    };
    let mut line = format!(
        "{:<12} {} — trains on {sources}{target}; batch division {}",
        m.name,
        m.help,
        m.batch_division.as_str()
    );
    if m.uses_proportions {
        line.push_str("; uses --target-proportions / --ws-noise");
    }
    line
}

fn image_line(m: &MethodInfo) -> String {
    let views = |v: &[crate::data::augment::Strength]| {
        v.iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let unlabelled = if m.needs.target == TargetUse::None {
        "no unlabelled images".to_string()
    } else {
        format!("unlabelled {} views", views(m.needs.views.unlabelled))
    };
    format!(
        "{:<12} {} — trains on labelled {} views, {unlabelled}",
        m.name,
        m.help.trim_start_matches("images: "),
        views(m.needs.views.labelled)
    )
}

/// `codats methods`: one block per registered method, time-series adaptation first.
pub fn table() -> String {
    let mut out = String::new();
    for (task, title) in [
        (
            Task::Adaptation,
            "Time-series domain adaptation (codats train):",
        ),
        (
            Task::Images,
            "Image classification with few labels (codats ssl train):",
        ),
    ] {
        out.push_str(title);
        out.push('\n');
        for m in REGISTRY.iter().filter(|m| m.task == task) {
            let mut line = match task {
                Task::Adaptation => adaptation_line(m),
                Task::Images => image_line(m),
            };
            if let Some(b) = m.backbone {
                line.push_str(&format!("; on --backbone {b}"));
            }
            if !m.aliases.is_empty() {
                line.push_str(&format!("; also accepted as {}", m.aliases.join(", ")));
            }
            out.push_str(&line);
            out.push('\n');
            for p in m.params {
                out.push_str(&format!(
                    "    --param {}={} ({}; valid {} to {})\n",
                    p.name, p.default, p.help, p.min, p.max
                ));
            }
        }
        out.push('\n');
    }
    out
}
