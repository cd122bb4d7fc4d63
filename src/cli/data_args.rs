//! The loader flags `train`, `datasets info` and `datasets verify` share, turned into the
//! [`DataOptions`] a run records.

use anyhow::{bail, Result};
use clap::Args;

use crate::data::registry::{self, DataOptions, DatasetName};
use crate::data::tabular::TabularOptions;
use crate::data::window::{LabelRule, WindowSpec};

/// Loader options: tabular columns and windows, WISDM/HAPT switches, synthetic settings, cache.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Data options")]
pub struct DataArgs {
    /// tabular: column holding the domain (participant) id.
    #[arg(long)]
    pub domain_col: Option<String>,
    /// tabular: column holding the class label.
    #[arg(long)]
    pub label_col: Option<String>,
    /// tabular: channel columns, comma separated, in window order.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub channels: Option<Vec<String>>,
    /// tabular: column to order each recording's rows by (default: file order).
    #[arg(long)]
    pub time_col: Option<String>,
    /// tabular: recording id column; windows never cross recordings.
    #[arg(long)]
    pub group_col: Option<String>,
    /// tabular: samples per window [default: 128].
    #[arg(long)]
    pub window_length: Option<usize>,
    /// tabular: samples between window starts [default: the window length, no overlap].
    #[arg(long)]
    pub window_stride: Option<usize>,
    /// tabular: a window's label: its last sample's, or the most frequent [default: last].
    #[arg(long, value_enum)]
    pub label_rule: Option<LabelRule>,
    /// tabular: sampling rate in Hz (shown by `datasets info`).
    #[arg(long)]
    pub sample_rate: Option<f64>,
    /// tabular: do not z-score windows per domain.
    #[arg(long)]
    pub no_zscore: bool,
    /// wisdm_ar / wisdm_at: keep every user (the reference keeps users with more than 19200 records).
    #[arg(long)]
    pub wisdm_all_users: bool,
    /// ucihapt: add the postural transitions (activities 7-12) as classes.
    #[arg(long)]
    pub hapt_transitions: bool,
    /// synthetic: number of domains [default: 10].
    #[arg(long)]
    pub synthetic_domains: Option<usize>,
    /// synthetic: number of classes [default: 3].
    #[arg(long)]
    pub synthetic_classes: Option<usize>,
    /// synthetic: channels per window (>= 2) [default: 3].
    #[arg(long)]
    pub synthetic_channels: Option<usize>,
    /// synthetic: samples per window [default: 128].
    #[arg(long)]
    pub synthetic_length: Option<usize>,
    /// synthetic: windows per class per domain [default: 60].
    #[arg(long)]
    pub synthetic_windows: Option<usize>,
    /// synthetic: overall domain shift, 0 = identical domains [default: 1].
    #[arg(long)]
    pub synthetic_shift: Option<f64>,
    /// synthetic: weight of the per-domain frequency offset [default: 1].
    #[arg(long)]
    pub synthetic_freq_shift: Option<f64>,
    /// synthetic: weight of the per-domain frequency scale [default: 1].
    #[arg(long)]
    pub synthetic_freq_scale: Option<f64>,
    /// synthetic: weight of the per-domain channel rotation [default: 1].
    #[arg(long)]
    pub synthetic_rotation: Option<f64>,
    /// synthetic: weight of the per-domain extra noise [default: 1].
    #[arg(long)]
    pub synthetic_noise_spread: Option<f64>,
    /// synthetic: base noise standard deviation [default: 0.3].
    #[arg(long)]
    pub synthetic_noise: Option<f64>,
    /// synthetic: generator seed [default: 0].
    #[arg(long)]
    pub synthetic_seed: Option<u64>,
    /// Parse the files even when a cached copy of the windows exists (and do not write one).
    #[arg(long)]
    pub no_cache: bool,
}

impl DataArgs {
    /// The loader options these flags give for dataset `name` (checked against it).
    pub fn options(&self, name: DatasetName) -> Result<DataOptions> {
        let tabular_flags = self.domain_col.is_some()
            || self.label_col.is_some()
            || self.channels.is_some()
            || self.time_col.is_some()
            || self.group_col.is_some()
            || self.window_length.is_some()
            || self.window_stride.is_some()
            || self.label_rule.is_some()
            || self.sample_rate.is_some()
            || self.no_zscore;
        let synthetic_flags = self.synthetic_domains.is_some()
            || self.synthetic_classes.is_some()
            || self.synthetic_channels.is_some()
            || self.synthetic_length.is_some()
            || self.synthetic_windows.is_some()
            || self.synthetic_shift.is_some()
            || self.synthetic_freq_shift.is_some()
            || self.synthetic_freq_scale.is_some()
            || self.synthetic_rotation.is_some()
            || self.synthetic_noise_spread.is_some()
            || self.synthetic_noise.is_some()
            || self.synthetic_seed.is_some();
        if tabular_flags && name != DatasetName::Tabular {
            bail!(
                "--domain-col, --label-col, --channels, --time-col, --group-col, --window-*, --label-rule, \
                 --sample-rate and --no-zscore apply to --dataset tabular, not {}",
                name.as_str()
            );
        }
        if synthetic_flags && name != DatasetName::Synthetic {
            bail!(
                "--synthetic-* options apply to --dataset synthetic, not {}",
                name.as_str()
            );
        }
        let card = name.card()?;
        let mut opts = DataOptions {
            wisdm_all_users: self.wisdm_all_users,
            hapt_transitions: self.hapt_transitions,
            ..Default::default()
        };
        if name == DatasetName::Tabular {
            let missing: Vec<&str> = [
                ("--domain-col", self.domain_col.is_none()),
                ("--label-col", self.label_col.is_none()),
                ("--channels", self.channels.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            if !missing.is_empty() {
                bail!(
                    "--dataset tabular needs {} (and --data-dir pointing at the CSV/Parquet file)",
                    missing.join(", ")
                );
            }
            let default = card.window.unwrap_or(WindowSpec {
                length: 128,
                stride: 128,
                label: LabelRule::Last,
                reference_bounds: false,
            });
            let length = self.window_length.unwrap_or(default.length);
            opts.tabular = Some(TabularOptions {
                domain_col: self.domain_col.clone().unwrap_or_default(),
                label_col: self.label_col.clone().unwrap_or_default(),
                channels: self.channels.clone().unwrap_or_default(),
                time_col: self.time_col.clone(),
                group_col: self.group_col.clone(),
                window: WindowSpec {
                    length,
                    stride: self.window_stride.unwrap_or(length),
                    label: self.label_rule.unwrap_or(default.label),
                    reference_bounds: false,
                },
                sample_rate_hz: self.sample_rate,
                zscore: !self.no_zscore,
            });
        }
        if name == DatasetName::Synthetic {
            let mut c = card.synthetic.clone().unwrap_or_default();
            let set = |v: Option<usize>, slot: &mut usize| {
                if let Some(v) = v {
                    *slot = v
                }
            };
            set(self.synthetic_domains, &mut c.domains);
            set(self.synthetic_classes, &mut c.classes);
            set(self.synthetic_channels, &mut c.channels);
            set(self.synthetic_length, &mut c.length);
            set(self.synthetic_windows, &mut c.windows_per_class);
            let setf = |v: Option<f64>, slot: &mut f64| {
                if let Some(v) = v {
                    *slot = v
                }
            };
            setf(self.synthetic_shift, &mut c.shift);
            setf(self.synthetic_freq_shift, &mut c.freq_shift);
            setf(self.synthetic_freq_scale, &mut c.freq_scale);
            setf(self.synthetic_rotation, &mut c.rotation);
            setf(self.synthetic_noise_spread, &mut c.noise_spread);
            setf(self.synthetic_noise, &mut c.noise);
            if let Some(s) = self.synthetic_seed {
                c.seed = s;
            }
            c.validate().map_err(anyhow::Error::msg)?;
            opts.synthetic = Some(c);
        }
        registry::check_options(name, &opts)?;
        Ok(opts)
    }
}
