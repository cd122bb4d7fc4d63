//! The text of `codats datasets info`: what a loaded dataset holds, per domain and class.

use super::plot;
use super::registry::Loaded;

impl Loaded {
    /// The text of `datasets info`.
    pub fn describe(&self) -> String {
        let l = self;
        use std::fmt::Write;
        let ds = &l.dataset;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} domains, {} windows, {} channels x {} samples, {} classes",
            ds.name,
            ds.domains.len(),
            ds.n_windows(),
            ds.channels,
            ds.length,
            ds.n_classes()
        );
        let _ = writeln!(s, "title: {}", l.card.title);
        let _ = writeln!(s, "source: {} ({})", l.source.display(), l.cache);
        let _ = writeln!(s, "sampling rate: {}", l.sample_rate);
        let _ = writeln!(s, "channels: {}", l.channel_names.join(", "));
        let _ = writeln!(
            s,
            "normalisation: {}",
            if ds.zscore {
                "z-score per domain per channel, fitted on the domain's train split"
            } else {
                "none (windows used as published)"
            }
        );
        if ds.domains.iter().any(|d| d.valid_lengths.is_some()) {
            let lens: Vec<u32> = ds
                .domains
                .iter()
                .flat_map(|d| d.valid_lengths.iter().flatten().copied())
                .collect();
            let (min, max) = (
                lens.iter().min().copied().unwrap_or(0),
                lens.iter().max().copied().unwrap_or(0),
            );
            let _ = writeln!(
                s,
                "windows are zero-padded to {}: real lengths {min}..{max}",
                ds.length
            );
        }
        let _ = writeln!(
            s,
            "classes: {}",
            ds.class_names
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i}={c}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let counts = plot::class_counts(ds);
        let width = ds
            .class_names
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(1)
            .clamp(6, 12);
        let header: Vec<String> = ds
            .class_names
            .iter()
            .map(|c| format!("{:>width$}", c.chars().take(width).collect::<String>()))
            .collect();
        let _ = writeln!(s, "{:>6} {:>7}  {}", "domain", "windows", header.join(" "));
        for (d, c) in ds.domains.iter().zip(&counts) {
            let cells: Vec<String> = c.iter().map(|n| format!("{n:>width$}")).collect();
            let _ = writeln!(s, "{:>6} {:>7}  {}", d.id, d.len(), cells.join(" "));
        }
        let totals: Vec<String> = (0..ds.n_classes())
            .map(|k| format!("{:>width$}", counts.iter().map(|c| c[k]).sum::<usize>()))
            .collect();
        let _ = writeln!(
            s,
            "{:>6} {:>7}  {}",
            "all",
            ds.n_windows(),
            totals.join(" ")
        );
        s.push_str(&l.report.to_string());
        s
    }
}
