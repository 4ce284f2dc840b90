//! Whole batches a read located in a segment's log file, left there: a plaintext fetch
//! sends them from the file to the socket (`splice`) without copying them through memory,
//! as Kafka's `FileRecords.writeTo` does with `sendfile`. Anything else reads them.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;

/// `len` bytes of `file` from `position`: batches with offsets from `first_offset` up to
/// (not including) `next_offset`. Holding the file keeps its bytes readable after the
/// segment is deleted; a truncation under it shortens what can be sent, which the sender
/// must treat as an error.
#[derive(Clone, Debug)]
pub struct FileRange {
    file: Arc<File>,
    position: u64,
    len: usize,
    first_offset: i64,
    next_offset: i64,
}

impl FileRange {
    pub(crate) fn new(
        file: Arc<File>,
        position: u64,
        len: usize,
        first_offset: i64,
        next_offset: i64,
    ) -> FileRange {
        FileRange {
            file,
            position,
            len,
            first_offset,
            next_offset,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The offsets the batches span: their record count, but for records compaction
    /// removed from between them.
    pub fn records(&self) -> u64 {
        (self.next_offset - self.first_offset).max(0) as u64
    }

    /// The bytes, read from the file (blocking: for a storage thread).
    pub fn read(&self) -> io::Result<Bytes> {
        read_unzeroed(&self.file, self.position, self.len).map(Bytes::from)
    }
}

/// `len` bytes at `position`, read into unzeroed memory: zeroing a fetch's megabytes before
/// reading over them was 15 % of the broker's CPU under a consume load (perf).
pub(crate) fn read_unzeroed(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = position + buf.len() as u64;
        match pread_into_spare(file, &mut buf, at) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(buf)
}

/// One `pread(2)` at `at` into `buf`'s spare capacity, which grows `buf` by what was read.
fn pread_into_spare(file: &File, buf: &mut Vec<u8>, at: u64) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let at =
        libc::off_t::try_from(at).map_err(|_| io::Error::other("read position beyond off_t"))?;
    // SAFETY: the kernel writes at most `spare.len()` bytes into `spare`, memory we own and
    // borrow mutably for the call; the fd stays open as long as `file` is borrowed.
    let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: pread initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}
