//! The Hotline engine. Built out by the engine issue; for now it only pins the storage
//! dependency so the workspace builds RocksDB once.

/// RocksDB version string this engine links against.
pub fn storage_version() -> String {
    let _ = rocksdb::Options::default();
    "rocksdb".to_owned()
}
