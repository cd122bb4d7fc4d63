//! results.parquet / results.csv: one row per run, every config field and every selection rule's
//! metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use polars::prelude::*;
use serde_json::Value;

use super::Record;
use crate::train::selection::names as rule_names;

/// A column's values before typing.
type Cells = Vec<Option<Value>>;

fn flatten(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => Some(Value::String(
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        )),
        Value::Object(_) => Some(Value::String(v.to_string())),
        other => Some(other.clone()),
    }
}

/// The table's columns in order: run identity, config fields (sorted), per-rule metrics.
pub fn columns(records: &[Record]) -> Result<Vec<(String, Cells)>> {
    let n = records.len();
    let mut cols: Vec<(String, Cells)> = Vec::new();
    let mut push = |name: &str, vals: Cells| cols.push((name.to_string(), vals));
    push(
        "job_id",
        records
            .iter()
            .map(|r| Some(Value::from(r.job.id.clone())))
            .collect(),
    );
    push(
        "problem",
        records
            .iter()
            .map(|r| Some(Value::from(r.job.problem.clone())))
            .collect(),
    );
    push(
        "variant",
        records
            .iter()
            .map(|r| Some(Value::from(r.job.variant.clone())))
            .collect(),
    );
    push(
        "n_sources",
        records
            .iter()
            .map(|r| Some(Value::from(r.job.sources.len() as u64)))
            .collect(),
    );
    // Every config field, whatever TrainConfig holds (fields absent in a run are null).
    let mut config: BTreeMap<String, Cells> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let v = serde_json::to_value(&r.config)?;
        let obj = v
            .as_object()
            .ok_or_else(|| anyhow!("config is not a table"))?;
        for (k, val) in obj {
            // The [method] table: its name is the `method` column, its other keys
            // (proportions, noise, parameters) columns of their own; so are the keys of an
            // image run's [images] table (labels_per_class, uratio, ...).
            if let (Some(table), "method" | "images") = (val.as_object(), k.as_str()) {
                for (mk, mv) in table {
                    let col = if mk == "name" { k } else { mk };
                    config.entry(col.clone()).or_insert_with(|| vec![None; n])[i] = flatten(mv);
                }
                continue;
            }
            config.entry(k.clone()).or_insert_with(|| vec![None; n])[i] = flatten(val);
        }
    }
    for (k, v) in config {
        cols.push((k, v));
    }
    for rule in rule_names() {
        let get = |f: &dyn Fn(&crate::train::result::RuleResult) -> Value| -> Cells {
            records
                .iter()
                .map(|r| r.result.selection.get(rule).map(f))
                .collect()
        };
        cols.push((format!("{rule}_step"), get(&|s| Value::from(s.step as u64))));
        cols.push((
            format!("{rule}_target_accuracy"),
            get(&|s| Value::from(s.target_test.accuracy)),
        ));
        cols.push((
            format!("{rule}_target_macro_f1"),
            get(&|s| Value::from(s.target_test.macro_f1)),
        ));
        cols.push((
            format!("{rule}_source_test_accuracy"),
            get(&|s| Value::from(s.source_test_accuracy)),
        ));
        cols.push((
            format!("{rule}_source_valid_accuracy"),
            get(&|s| Value::from(s.source_valid_accuracy)),
        ));
        cols.push((
            format!("{rule}_target_valid_accuracy"),
            get(&|s| Value::from(s.target_valid_accuracy)),
        ));
        // Clustering methods (UIC, …): their clusters scored by the clustering protocols, in
        // columns present only when some run of the sweep has them.
        let clustered = records.iter().any(|r| {
            r.result
                .selection
                .get(rule)
                .is_some_and(|s| s.clustering.is_some())
        });
        if clustered {
            type Score = fn(&crate::eval::cluster::ClusterScores) -> Value;
            let scores: [(&str, Score); 5] = [
                ("clusters", |c| Value::from(c.clusters as u64)),
                ("hungarian_accuracy", |c| Value::from(c.hungarian_accuracy)),
                ("majority_accuracy", |c| Value::from(c.majority_accuracy)),
                ("nmi", |c| Value::from(c.nmi)),
                ("ari", |c| Value::from(c.ari)),
            ];
            for (name, score) in scores {
                let cells: Cells = records
                    .iter()
                    .map(|r| {
                        r.result
                            .selection
                            .get(rule)
                            .and_then(|s| s.clustering.as_ref())
                            .map(score)
                    })
                    .collect();
                cols.push((format!("{rule}_{name}"), cells));
            }
        }
    }
    cols.push((
        "run_dir".into(),
        records
            .iter()
            .map(|r| Some(Value::from(r.run_dir.display().to_string())))
            .collect(),
    ));
    Ok(cols)
}

fn to_column(name: &str, cells: &Cells) -> Column {
    let present: Vec<&Value> = cells.iter().flatten().collect();
    let name = PlSmallStr::from(name);
    if !present.is_empty() && present.iter().all(|v| v.is_boolean()) {
        let v: Vec<Option<bool>> = cells
            .iter()
            .map(|c| c.as_ref().and_then(|v| v.as_bool()))
            .collect();
        return Column::new(name, v);
    }
    if !present.is_empty() && present.iter().all(|v| v.is_i64() || v.is_u64()) {
        let v: Vec<Option<i64>> = cells
            .iter()
            .map(|c| {
                c.as_ref()
                    .and_then(|v| v.as_i64().or(v.as_u64().map(|u| u as i64)))
            })
            .collect();
        return Column::new(name, v);
    }
    if !present.is_empty() && present.iter().all(|v| v.is_number()) {
        let v: Vec<Option<f64>> = cells
            .iter()
            .map(|c| c.as_ref().and_then(|v| v.as_f64()))
            .collect();
        return Column::new(name, v);
    }
    let v: Vec<Option<String>> = cells
        .iter()
        .map(|c| {
            c.as_ref().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .collect();
    Column::new(name, v)
}

/// The results table as a polars DataFrame.
pub fn dataframe(records: &[Record]) -> Result<DataFrame> {
    let cols: Vec<Column> = columns(records)?
        .iter()
        .map(|(n, c)| to_column(n, c))
        .collect();
    Ok(DataFrame::new(records.len(), cols)?)
}

/// Writes results.parquet and results.csv into `out` (each via a temporary file and a rename).
pub fn write_results(records: &[Record], out: &Path) -> Result<Vec<PathBuf>> {
    let mut df = dataframe(records)?;
    let parquet = out.join("results.parquet");
    let tmp = out.join("results.parquet.tmp");
    {
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        ParquetWriter::new(f).finish(&mut df)?;
    }
    std::fs::rename(&tmp, &parquet)?;
    let csv = out.join("results.csv");
    let tmp = out.join("results.csv.tmp");
    {
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        CsvWriter::new(f).finish(&mut df)?;
    }
    std::fs::rename(&tmp, &csv)?;
    Ok(vec![parquet, csv])
}
