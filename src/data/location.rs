//! Where a dataset's files live on disk: `--data-dir`, then `$CODATS_DATA_DIR/<name>`, then the user cache.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the folder that holds one sub-folder per dataset.
pub const DATA_DIR_ENV: &str = "CODATS_DATA_DIR";

/// Which rule chose a dataset folder (shown in messages so users know what to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationRule {
    /// The folder given with `--data-dir`.
    DataDirFlag,
    /// `$CODATS_DATA_DIR/<name>`.
    EnvVar,
    /// The platform cache folder: `<cache>/codats/<name>`.
    CacheDir,
    /// No platform cache folder: `~/.cache/codats/<name>`.
    HomeCache,
    /// Neither a cache nor a home folder: `./codats-data/<name>`.
    CurrentDir,
}

impl fmt::Display for LocationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocationRule::DataDirFlag => "given with --data-dir",
            LocationRule::EnvVar => "from $CODATS_DATA_DIR",
            LocationRule::CacheDir => {
                "the default cache folder; set --data-dir or $CODATS_DATA_DIR to change it"
            }
            LocationRule::HomeCache => {
                "the default ~/.cache folder; set --data-dir or $CODATS_DATA_DIR to change it"
            }
            LocationRule::CurrentDir => {
                "no cache or home folder, so under the current folder; set --data-dir or $CODATS_DATA_DIR"
            }
        })
    }
}

/// A dataset folder and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetLocation {
    /// The folder holding this dataset's files (archive or extracted folder).
    pub dir: PathBuf,
    /// Why this folder was chosen.
    pub rule: LocationRule,
}

impl fmt::Display for DatasetLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.dir.display(), self.rule)
    }
}

/// The folder holding dataset `name`'s files (see [`locate`] for the rules).
pub fn dataset_dir(name: &str, data_dir: Option<&Path>) -> PathBuf {
    locate(name, data_dir).dir
}

/// Chooses dataset `name`'s folder: `data_dir` itself, else `$CODATS_DATA_DIR/<name>`, else the user cache.
pub fn locate(name: &str, data_dir: Option<&Path>) -> DatasetLocation {
    resolve(
        name,
        data_dir,
        std::env::var_os(DATA_DIR_ENV),
        dirs::cache_dir(),
        dirs::home_dir(),
    )
}

/// The rules of [`locate`] with the environment passed in (testable).
fn resolve(
    name: &str,
    data_dir: Option<&Path>,
    env: Option<OsString>,
    cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> DatasetLocation {
    if let Some(dir) = data_dir {
        return DatasetLocation {
            dir: dir.to_path_buf(),
            rule: LocationRule::DataDirFlag,
        };
    }
    if let Some(root) = env.filter(|v| !v.is_empty()) {
        return DatasetLocation {
            dir: PathBuf::from(root).join(name),
            rule: LocationRule::EnvVar,
        };
    }
    if let Some(cache) = cache {
        return DatasetLocation {
            dir: cache.join("codats").join(name),
            rule: LocationRule::CacheDir,
        };
    }
    if let Some(home) = home {
        return DatasetLocation {
            dir: home.join(".cache").join("codats").join(name),
            rule: LocationRule::HomeCache,
        };
    }
    DatasetLocation {
        dir: PathBuf::from("codats-data").join(name),
        rule: LocationRule::CurrentDir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_and_is_the_dataset_folder_itself() {
        let loc = resolve(
            "ucihar",
            Some(Path::new("/d")),
            Some("/e".into()),
            Some("/c".into()),
            Some("/h".into()),
        );
        assert_eq!(loc.dir, PathBuf::from("/d"));
        assert_eq!(loc.rule, LocationRule::DataDirFlag);
    }

    #[test]
    fn env_var_holds_one_folder_per_dataset() {
        let loc = resolve("ucihar", None, Some("/e".into()), Some("/c".into()), None);
        assert_eq!(loc.dir, PathBuf::from("/e/ucihar"));
        assert_eq!(loc.rule, LocationRule::EnvVar);
    }

    #[test]
    fn empty_env_var_is_ignored() {
        let loc = resolve("ucihar", None, Some("".into()), Some("/c".into()), None);
        assert_eq!(loc.dir, PathBuf::from("/c/codats/ucihar"));
        assert_eq!(loc.rule, LocationRule::CacheDir);
    }

    #[test]
    fn home_then_current_folder_fallbacks() {
        let loc = resolve("ucihar", None, None, None, Some("/h".into()));
        assert_eq!(loc.dir, PathBuf::from("/h/.cache/codats/ucihar"));
        assert_eq!(loc.rule, LocationRule::HomeCache);
        let loc = resolve("ucihar", None, None, None, None);
        assert_eq!(loc.dir, PathBuf::from("codats-data/ucihar"));
        assert_eq!(loc.rule, LocationRule::CurrentDir);
    }

    #[test]
    fn display_names_the_rule() {
        let loc = resolve("x", Some(Path::new("/d")), None, None, None);
        assert_eq!(loc.to_string(), "/d (given with --data-dir)");
    }
}
