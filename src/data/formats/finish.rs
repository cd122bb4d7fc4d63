//! What the windowed loaders share: reading their tables of the card, and the common ending that
//! turns each domain's windows into [`DomainData`] and the whole into a [`Dataset`], refusing a
//! dataset without a single window.

use crate::data::card::Card;
use crate::data::report::LoadReport;
use crate::data::window::{shrunk, WindowSink, WindowSpec};
use crate::data::{DataError, Dataset, DomainData};

/// A loader's table of the card (`[hhar]`, `[wisdm]`, ...), or an error naming the missing table.
pub(crate) fn table<'c, T>(
    card: &Card,
    table: Option<&'c T>,
    name: &str,
) -> Result<&'c T, DataError> {
    table.ok_or_else(|| DataError::Spec {
        name: card.name.clone(),
        reason: format!("no [{name}] table"),
    })
}

/// The card's `[window]` table, checked.
pub(crate) fn window_spec(card: &Card) -> Result<WindowSpec, DataError> {
    let spec = table(card, card.window.as_ref(), "window")?;
    spec.check()?;
    Ok(*spec)
}

/// Each domain's windows as [`DomainData`] (spare capacity dropped), in the order given, leaving
/// out the domains that got no window; returns the domains and the ids of those left out.
pub(crate) fn domains(
    sinks: impl IntoIterator<Item = (u32, WindowSink)>,
) -> (Vec<DomainData>, Vec<u32>) {
    let mut domains = Vec::new();
    let mut empty = Vec::new();
    for (id, sink) in sinks {
        if sink.y.is_empty() {
            empty.push(id);
            continue;
        }
        domains.push(DomainData {
            id,
            x: shrunk(sink.x),
            y: sink.y,
            valid_lengths: None,
        });
    }
    (domains, empty)
}

/// What a dataset is besides its domains.
pub(crate) struct Shape {
    /// Registry name.
    pub name: String,
    /// Channels per window.
    pub channels: usize,
    /// Samples per window.
    pub length: usize,
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Whether windows are z-scored per domain.
    pub zscore: bool,
}

/// The loaders' common ending: the dataset of `domains` shaped as `shape`, with its report; an
/// error ([`DataError::NoWindows`], the reason from `no_windows`) when there is no domain.
pub(crate) fn dataset(
    shape: Shape,
    domains: Vec<DomainData>,
    report: LoadReport,
    no_windows: impl FnOnce() -> String,
) -> Result<(Dataset, LoadReport), DataError> {
    if domains.is_empty() {
        return Err(DataError::NoWindows {
            name: shape.name,
            reason: no_windows(),
        });
    }
    Ok((
        Dataset {
            name: shape.name,
            channels: shape.channels,
            length: shape.length,
            class_names: shape.class_names,
            zscore: shape.zscore,
            domains,
        },
        report,
    ))
}
