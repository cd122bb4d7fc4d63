//! uWave gesture library loader: one example per `*Acceleration*.txt` file of `x y z` lines, read from
//! the extracted tree (the published zip nests one `.rar` per user and day, which must be extracted).
//!
//! Layout: each `U<user> (<day>).rar` extracted into a folder of the same name, e.g.
//! `uwave/U1 (1)/A_Template_Acceleration1-1.txt`. The user (domain id 1..8) comes from the nearest
//! enclosing `U<user> (<day>)` folder; the gesture from the file name's `<gesture>-<repeat>.txt`
//! (1-based, so class = gesture - 1; the repeat may be missing, as in one published file). Examples are
//! zero-padded to 315 samples; [`crate::data::DomainData::valid_lengths`] records their real length so that
//! the per-user z-score is fitted on the real samples of the train split and padding stays zero, as
//! the reference (normalise, then pad) does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::finish::{self, Shape};
use super::{DataOptions, Format};
use crate::data::card::{Card, UwaveCard};
use crate::data::parse::{for_each_line, parse_f32, show};
use crate::data::report::LoadReport;
use crate::data::source::Tree;
use crate::data::{DataError, Dataset, DomainData};

/// The uWave gesture format: one zero-padded example per gesture file, a domain per user.
pub struct Uwave;

impl Format for Uwave {
    fn inputs(&self, card: &Card, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        inputs(dir, card)
    }

    fn parse(
        &self,
        card: &Card,
        dir: &Path,
        _opts: &DataOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        load(dir, card)
    }
}

/// How to extract the published `.rar` files, for messages.
pub const EXTRACT_HINT: &str = "codats cannot read .rar files: extract each `U<user> (<day>).rar` into a \
folder named after it, e.g. `for f in *.rar; do d=\"${f%.rar}\"; mkdir -p \"$d\" && unrar x -o+ \"$f\" \"$d/\"; done` \
(or `7z x \"$f\" -o\"$d\"`, or `bsdtar -xf \"$f\" -C \"$d\"`), then load the folder holding them";

fn uwave_card(card: &Card) -> Result<&UwaveCard, DataError> {
    finish::table(card, card.uwave.as_ref(), "uwave")
}

/// The tree to read and its gesture files (user, day, path), sorted by path.
fn find(dir: &Path, card: &Card) -> Result<(Tree, Vec<(u32, String)>), DataError> {
    let u = uwave_card(card)?;
    let lower = dir.to_string_lossy().to_ascii_lowercase();
    if dir.is_file() && lower.ends_with(".rar") {
        return Err(DataError::NeedsExtraction {
            path: dir.to_path_buf(),
            reason: EXTRACT_HINT.into(),
        });
    }
    let tree = if dir.is_file() && lower.ends_with(".zip") {
        Tree::Zip(dir.to_path_buf())
    } else if dir.is_dir() {
        Tree::Dir(dir.to_path_buf())
    } else {
        return Err(crate::data::source::not_found(
            card,
            dir,
            "folders `U<user> (<day>)/` of gesture files",
        ));
    };
    let files = tree.files()?;
    let gestures: Vec<&String> = files
        .iter()
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            name.contains(&u.file_contains) && name.ends_with(".txt")
        })
        .collect();
    if gestures.is_empty() {
        if let Some(rar) = files
            .iter()
            .find(|f| f.to_ascii_lowercase().ends_with(".rar"))
        {
            return Err(DataError::NeedsExtraction {
                path: PathBuf::from(tree.display(rar)),
                reason: EXTRACT_HINT.into(),
            });
        }
        if let Some(src) = &card.source {
            let zip = dir.join(&src.archive);
            if zip.is_file() {
                return Err(DataError::NeedsExtraction {
                    path: zip,
                    reason: format!("unzip it here first; then {EXTRACT_HINT}"),
                });
            }
        }
        return Err(crate::data::source::not_found(
            card,
            dir,
            "folders `U<user> (<day>)/` holding `*Acceleration*.txt` gesture files",
        ));
    }
    let mut out = Vec::with_capacity(gestures.len());
    for rel in gestures {
        let user = user_of(rel).ok_or_else(|| DataError::BadFile {
            file: tree.display(rel),
            reason: format!(
                "cannot tell which user recorded this gesture: it is not inside a `U<user> (<day>)` folder; {EXTRACT_HINT}"
            ),
        })?;
        out.push((user, rel.clone()));
    }
    Ok((tree, out))
}

/// The user of a gesture file: the nearest enclosing folder named `U<user> (<day>)` (`.rar` allowed).
fn user_of(rel: &str) -> Option<u32> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    parts.iter().rev().find_map(|p| parse_user_folder(p))
}

/// `U3 (7)` → 3 (also `U3(7)`, `U3 (7).rar`, case-insensitive `u`).
fn parse_user_folder(name: &str) -> Option<u32> {
    let name = name.strip_suffix(".rar").unwrap_or(name);
    let rest = name.strip_prefix('U').or_else(|| name.strip_prefix('u'))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let user: u32 = rest[..digits].parse().ok()?;
    let day = rest[digits..]
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    if day.is_empty() || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(user)
}

/// The 1-based gesture index in a file name ending `<gesture>-<repeat>.txt` (repeat may be empty).
fn gesture_of(rel: &str) -> Option<u32> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let stem = name.strip_suffix(".txt")?;
    let (head, repeat) = stem.rsplit_once('-')?;
    if !repeat.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = head.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    head[head.len() - digits..].parse().ok()
}

/// Files whose contents determine the dataset (for the cache key).
pub fn inputs(dir: &Path, card: &Card) -> Result<Vec<PathBuf>, DataError> {
    let (tree, files) = find(dir, card)?;
    let rels: Vec<String> = files.into_iter().map(|(_, r)| r).collect();
    Ok(tree.disk_files(&rels))
}

/// Loads uWave from the extracted tree in `dir`.
pub fn load(dir: &Path, card: &Card) -> Result<(Dataset, LoadReport), DataError> {
    let u = uwave_card(card)?;
    let (tree, files) = find(dir, card)?;
    let n_classes = card.classes.len() as u32;
    let pad = u.pad_to;
    let mut ctx = tree.context()?;
    let mut per_user: BTreeMap<u32, DomainData> = BTreeMap::new();
    let mut report = LoadReport::default();
    let mut sample = Vec::with_capacity(pad * 3);
    for (user, rel) in &files {
        let name = tree.display(rel);
        let gesture = gesture_of(rel)
            .filter(|g| (1..=n_classes).contains(g))
            .ok_or_else(|| DataError::BadFile {
                file: name.clone(),
                reason: format!(
                    "the file name does not end in `<gesture>-<repeat>.txt` with a gesture 1..{n_classes}"
                ),
            })?;
        let bytes = tree.read(&mut ctx, rel)?;
        sample.clear();
        parse_gesture(&bytes, &name, &mut sample)?;
        let len = sample.len() / 3;
        if len == 0 {
            return Err(DataError::BadFile {
                file: name,
                reason: "no samples".into(),
            });
        }
        if len > pad {
            return Err(DataError::BadFile {
                file: name,
                reason: format!("{len} samples, more than the {pad} gestures are padded to"),
            });
        }
        report.rows += len as u64;
        let d = per_user.entry(*user).or_insert_with(|| DomainData {
            id: *user,
            x: Vec::new(),
            y: Vec::new(),
            valid_lengths: Some(Vec::new()),
        });
        for c in 0..3 {
            d.x.extend(sample.iter().skip(c).step_by(3));
            d.x.extend(std::iter::repeat_n(0.0f32, pad - len));
        }
        d.y.push(gesture - 1);
        if let Some(v) = d.valid_lengths.as_mut() {
            v.push(len as u32);
        }
    }
    report.inputs = vec![format!(
        "{} gesture files in {}",
        files.len(),
        dir.display()
    )];
    report.note(format!(
        "{} gestures from users {}; zero-padded to {pad} samples (padding excluded from the z-score)",
        files.len(),
        per_user
            .keys()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let shape = Shape {
        name: card.name.clone(),
        channels: 3,
        length: pad,
        class_names: card.classes.clone(),
        zscore: card.zscore,
    };
    // Unreachable in practice: `find` refuses a tree without gesture files.
    finish::dataset(shape, per_user.into_values().collect(), report, || {
        format!("no gesture file in {}", dir.display())
    })
}

/// Parses one gesture file's `x y z` lines (`name` names it in messages), appending the samples to
/// `sample` interleaved.
pub(crate) fn parse_gesture(
    bytes: &[u8],
    name: &str,
    sample: &mut Vec<f32>,
) -> Result<(), DataError> {
    let bad = |line: usize, reason: String| DataError::BadLine {
        file: name.to_string(),
        line,
        reason,
    };
    for_each_line(bytes, name, |line, text| {
        let mut values = [0f32; 3];
        let mut k = 0;
        for tok in text
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            if k == 3 {
                return Err(bad(
                    line,
                    format!("expected 3 values (x y z), found more: {:?}", show(text)),
                ));
            }
            values[k] = parse_f32(tok).filter(|v| v.is_finite()).ok_or_else(|| {
                bad(
                    line,
                    format!("value {:?} is not a finite number", show(tok)),
                )
            })?;
            k += 1;
        }
        if k != 3 {
            return Err(bad(line, format!("expected 3 values (x y z), found {k}")));
        }
        sample.extend_from_slice(&values);
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_user_and_gesture() {
        assert_eq!(user_of("U1 (1)/A_Template_Acceleration1-1.txt"), Some(1));
        assert_eq!(
            user_of("x/U8 (7).rar/Z_Template_Acceleration8-10.txt"),
            Some(8)
        );
        assert_eq!(user_of("U12(3)/a.txt"), Some(12));
        assert_eq!(user_of("A_Template_Acceleration1-1.txt"), None);
        assert_eq!(user_of("Users (1)/a.txt"), None);
        assert_eq!(gesture_of("U1 (1)/A_Template_Acceleration3-7.txt"), Some(3));
        assert_eq!(gesture_of("U1 (1)/A_Template_Acceleration8-.txt"), Some(8));
        assert_eq!(gesture_of("A_Template_Acceleration.txt"), None);
        assert_eq!(gesture_of("A_Template_Acceleration1-x.txt"), None);
    }
}
