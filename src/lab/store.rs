//! The nodes' persistent key-value stores: one JSON file each (`<data>/<node>/store.json`, or
//! `<data>/schemas/<schema>/store.json` for Jahia's shared database schemas), so that backups
//! are real file copies and restores really bring data back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

/// What is on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreFile {
    /// The store format (see [`super::config::Version::store_format`]).
    pub format: u32,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A store file and its in-memory copy; every change is written through.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    pub file: StoreFile,
}

fn io_err(path: &Path, e: std::io::Error) -> LabError {
    LabError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Store {
    /// Opens the store at `path`, creating it at `format` with `seed` data when absent.
    pub fn open_or_create(
        path: PathBuf,
        format: u32,
        seed: &BTreeMap<String, String>,
    ) -> Result<Store, LabError> {
        if path.exists() {
            let file = read_store_file(&path)?;
            return Ok(Store { path, file });
        }
        let store = Store {
            path,
            file: StoreFile {
                format,
                data: seed.clone(),
            },
        };
        store.save()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the file atomically (temp file, then rename) so a crash never leaves half a store.
    pub fn save(&self) -> Result<(), LabError> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let text = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| LabError::Store(format!("cannot encode store: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))
    }

    /// Copies the store file to `dest` (a backup).
    pub fn copy_to(&self, dest: &Path) -> Result<(), LabError> {
        self.save()?;
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        fs::copy(&self.path, dest).map_err(|e| io_err(dest, e))?;
        Ok(())
    }

    /// Replaces this store with the file at `src` (a restore): format and data.
    pub fn restore_from(&mut self, src: &Path) -> Result<(), LabError> {
        let file = read_store_file(src)?;
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        fs::copy(src, &self.path).map_err(|e| io_err(&self.path, e))?;
        self.file = file;
        Ok(())
    }
}

/// Writes a store file to `path` (a backup assembled from several stores), atomically.
pub fn write_store_file(path: &Path, file: &StoreFile) -> Result<(), LabError> {
    Store {
        path: path.to_path_buf(),
        file: file.clone(),
    }
    .save()
}

/// Reads and decodes a store or backup file.
pub fn read_store_file(path: &Path) -> Result<StoreFile, LabError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| LabError::Store(format!("{} is not a store file: {e}", path.display())))
}

/// Names used as file and directory names (backups, schemas): no path tricks.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_and_restore_are_file_copies() {
        let dir = tempfile::tempdir().unwrap();
        let seed = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let mut s = Store::open_or_create(dir.path().join("n/store.json"), 1025, &seed).unwrap();
        let backup = dir.path().join("backups/b1.json");
        s.copy_to(&backup).unwrap();
        s.file.data.insert("a".into(), "2".into());
        s.file.format = 1026;
        s.save().unwrap();
        s.restore_from(&backup).unwrap();
        assert_eq!(s.file.data["a"], "1");
        assert_eq!(s.file.format, 1025);
        let again = Store::open_or_create(s.path().to_path_buf(), 9, &BTreeMap::new()).unwrap();
        assert_eq!(again.file, s.file);
    }

    #[test]
    fn names_cannot_escape() {
        assert!(valid_name("pre_upgrade-1"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
    }
}
