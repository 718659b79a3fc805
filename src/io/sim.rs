//! Placeholder: being written.
use std::io;
use std::path::Path;
use std::sync::Arc;
use async_trait::async_trait;
use futures::future::BoxFuture;
use super::{File, Fs, OpenMode};

/// Placeholder.
#[derive(Debug)]
pub struct SimFs;

impl SimFs {
    /// Placeholder.
    pub fn new() -> io::Result<Self> {
        Err(io::Error::other("not yet written"))
    }
}

#[async_trait]
impl Fs for SimFs {
    async fn open(&self, _path: &Path, _mode: OpenMode) -> io::Result<Arc<dyn File>> { Err(io::Error::other("todo")) }
    async fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> { Err(io::Error::other("todo")) }
    async fn remove_file(&self, _path: &Path) -> io::Result<()> { Err(io::Error::other("todo")) }
    async fn create_dir_all(&self, _path: &Path) -> io::Result<()> { Err(io::Error::other("todo")) }
    async fn sync_dir(&self, _path: &Path) -> io::Result<()> { Err(io::Error::other("todo")) }
    async fn list_dir(&self, _path: &Path) -> io::Result<Vec<String>> { Err(io::Error::other("todo")) }
    fn spawn(&self, _task: BoxFuture<'static, ()>) -> io::Result<()> { Err(io::Error::other("todo")) }
    fn name(&self) -> &'static str { "sim" }
}
