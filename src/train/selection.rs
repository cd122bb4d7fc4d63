//! Model-selection rules as data: each keeps the weights with the best value of one validation
//! score. `last` (the final weights) is implicit; a new rule is one entry in [`RULES`].

/// What one evaluation measured: the inputs every rule scores from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Accuracy on the sources' validation windows (0 when the method uses no sources).
    pub source_valid: f64,
    /// Accuracy on the target's validation windows (labelled: only oracle rules may use it).
    pub target_valid: f64,
    /// Accuracy on the validation windows of the domains the method trains on: the sources', or
    /// the target's own for a method trained on target labels (`target_only`).
    pub trained_valid: f64,
    /// Mean cross-entropy on those same windows (the source risk).
    pub trained_valid_loss: f64,
    /// The sources' validation risk weighted towards the target
    /// ([`crate::eval::importance`]), and the same with DEV's control variate: `(iwv, dev)`
    /// (0 where the rules do not apply).
    pub weighted_risk: (f64, f64),
    /// Accuracy on the few-shot rule's labelled target windows (`--few-shot`; 0 without).
    pub few_shot: f64,
}

/// A selection rule: a name (the checkpoint file and the key in result.json), what it means,
/// whether it reads target labels, and the score it maximises (first evaluation kept, then
/// only strictly greater, as the reference).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Name in result.json, report tables and `checkpoints/<name>.safetensors`.
    pub name: &'static str,
    /// One line for docs and reports.
    pub description: &'static str,
    /// Whether the rule uses target labels (an oracle: not available in practice).
    pub oracle: bool,
    /// The score to maximise.
    pub score: fn(&Scores) -> f64,
    /// The validation set it scores on: an image run has no labelled validation images of the
    /// pool it trains on, so rules on that set do not apply to it.
    pub set: RuleSet,
}

/// The validation set a rule scores on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSet {
    /// The validation split of the domains the method trains on.
    Trained,
    /// The target's validation split.
    Target,
    /// The sources' validation split weighted by density ratios against the target's unlabelled
    /// training windows (adaptation methods trained on the sources).
    Weighted,
    /// The few labelled target training windows of `--few-shot`.
    FewShot,
}

/// The final weights' pseudo-rule.
pub const LAST: &str = "last";

fn trained_valid(s: &Scores) -> f64 {
    s.trained_valid
}

fn negative_risk(s: &Scores) -> f64 {
    -s.trained_valid_loss
}

fn target_valid(s: &Scores) -> f64 {
    s.target_valid
}

fn negative_iwv(s: &Scores) -> f64 {
    -s.weighted_risk.0
}

fn negative_dev(s: &Scores) -> f64 {
    -s.weighted_risk.1
}

fn few_shot(s: &Scores) -> f64 {
    s.few_shot
}

/// The rules with best-weights checkpoints, in report order (after `last`).
pub const RULES: &[Rule] = &[
    Rule {
        name: "best_source",
        description: "validation accuracy of the domains trained on (no target labels for \
                      adaptation methods; the target's own for target_only)",
        oracle: false,
        score: trained_valid,
        set: RuleSet::Trained,
    },
    Rule {
        name: "source_risk",
        description: "lowest cross-entropy on the validation windows of the domains trained on \
                      (source risk; label-free for adaptation methods)",
        oracle: false,
        score: negative_risk,
        set: RuleSet::Trained,
    },
    Rule {
        name: "iwv",
        description: "lowest importance-weighted source validation risk (IWV, Sugiyama et al. \
                      2007; density ratios from a domain classifier on features; label-free)",
        oracle: false,
        score: negative_iwv,
        set: RuleSet::Weighted,
    },
    Rule {
        name: "dev",
        description: "lowest deep embedded validation risk (DEV, You et al. 2019: IWV with the \
                      weights as a control variate; label-free)",
        oracle: false,
        score: negative_dev,
        set: RuleSet::Weighted,
    },
    Rule {
        name: "few_shot",
        description: "accuracy on K labelled target training windows per class (`--few-shot K`, \
                      recorded in result.json; the only target labels it sees)",
        oracle: false,
        score: few_shot,
        set: RuleSet::FewShot,
    },
    Rule {
        name: "best_target",
        description: "target validation accuracy (oracle: uses target labels)",
        oracle: true,
        score: target_valid,
        set: RuleSet::Target,
    },
];

/// Every rule name, `last` first: the keys of result.json's `selection`.
pub fn names() -> Vec<&'static str> {
    std::iter::once(LAST)
        .chain(RULES.iter().map(|r| r.name))
        .collect()
}

/// Refuses `rule` given to `flag` unless it names a rule of [`names`]: "FLAG RULE: not a
/// selection rule (choose from …)".
pub fn check_name(flag: &str, rule: &str) -> Result<(), String> {
    let known = names();
    if known.contains(&rule) {
        return Ok(());
    }
    Err(format!(
        "{flag} {rule}: not a selection rule (choose from {})",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_score_what_they_say() {
        let s = Scores {
            source_valid: 0.1,
            target_valid: 0.2,
            trained_valid: 0.3,
            trained_valid_loss: 0.7,
            weighted_risk: (0.4, 0.5),
            few_shot: 0.6,
        };
        let by = |n: &str| RULES.iter().find(|r| r.name == n).expect("rule");
        assert_eq!((by("best_source").score)(&s), 0.3);
        assert_eq!((by("best_target").score)(&s), 0.2);
        assert!(by("best_target").oracle && !by("best_source").oracle);
        assert_eq!((by("source_risk").score)(&s), -0.7);
        assert!(!by("source_risk").oracle);
        assert_eq!((by("iwv").score)(&s), -0.4);
        assert_eq!((by("dev").score)(&s), -0.5);
        assert!(!by("iwv").oracle && !by("dev").oracle);
        assert_eq!((by("few_shot").score)(&s), 0.6);
        assert_eq!(
            names(),
            [
                "last",
                "best_source",
                "source_risk",
                "iwv",
                "dev",
                "few_shot",
                "best_target"
            ]
        );
    }
}
