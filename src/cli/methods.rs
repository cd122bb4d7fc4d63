//! `codats methods`: the registry as a user reads it.

/// `codats methods`: one block per registered method.
pub fn table() -> String {
    use crate::methods::{TargetUse, REGISTRY};
    let mut out = String::new();
    for m in REGISTRY {
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
    out
}
