//! Sends a frame whose records were left in their files (see `topics::unread`) without
//! copying them through the broker's memory: the kernel moves page-cache pages into a pipe
//! (`splice`, on a storage thread, where a cold page may wait for the disk) and from the
//! pipe into the socket (`splice`, on the event loop, which then never touches the disk).
//! Kafka's `sendfile` does both halves at once on its network threads, which a cold read
//! stalls. The frame's small parts (the response's fields) go through the same pipe, so one
//! storage-thread round trip moves up to a pipe's capacity of the frame, in order.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::pipe::{self, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::protocol::Chunk;
use crate::topics::on_storage_thread;

/// The capacity asked of a frame's pipe. It may get less (`fs.pipe-max-size`; or, for a
/// user without CAP_SYS_RESOURCE, two pages once its pipes hold `fs.pipe-user-pages-soft`,
/// 64 MiB by default) and works with what it gets, in more storage-thread round trips.
const PIPE_CAPACITY: usize = 1 << 20;

/// The pipe a frame passes through. Made for the frame and closed after it: the kernel
/// counts a pipe's pages against its user while the pipe exists, so a pipe kept by every
/// idle connection would soon leave the busy ones two pages each.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = match pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY) {
            Ok(capacity) => capacity,
            Err(_) => pipe::fcntl_getpipe_size(&write)?,
        };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Moves what fits of `chunks` from `at` into the (empty) pipe: how much, and where the
    /// next fill starts. Blocking, for a storage thread: a file's pages may need reading.
    fn fill(&self, chunks: &[Chunk], mut at: Cursor) -> io::Result<(usize, Cursor)> {
        let mut filled = 0;
        while filled < self.capacity {
            let Some(chunk) = chunks.get(at.chunk) else {
                break;
            };
            let want = (chunk.len() - at.offset).min(self.capacity - filled);
            let moved = match chunk {
                _ if want == 0 => Ok(0),
                Chunk::Bytes(bytes) => rustix::io::write(&self.write, &bytes[at.offset..][..want]),
                Chunk::File(range) => {
                    let mut from = range.position() + at.offset as u64;
                    pipe::splice(
                        range.file(),
                        Some(&mut from),
                        &self.write,
                        None,
                        want,
                        SpliceFlags::MOVE,
                    )
                }
            };
            match moved {
                // The pipe is full: its pages are fewer than its capacity in bytes when
                // chunks end mid-page. The next fill goes on from here.
                Err(rustix::io::Errno::AGAIN) if filled > 0 => break,
                Err(err) => return Err(err.into()),
                Ok(0) if want > 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a segment file was truncated while its records were being sent",
                    ))
                }
                Ok(n) => {
                    filled += n;
                    at.offset += n;
                }
            }
            if at.offset == chunk.len() {
                at = Cursor {
                    chunk: at.chunk + 1,
                    offset: 0,
                };
            }
        }
        Ok((filled, at))
    }

    /// Moves `len` bytes from the pipe into the socket, waiting for room in it.
    async fn drain(&self, socket: &TcpStream, mut len: usize) -> io::Result<()> {
        while len > 0 {
            socket.writable().await?;
            let moved = socket.try_io(Interest::WRITABLE, || {
                let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
                Ok(pipe::splice(&self.read, None, socket, None, len, flags)?)
            });
            match moved {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => len -= n,
                // try_io cleared the socket's readiness: wait for room again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// A position in a frame: a chunk, and a byte in it.
#[derive(Clone, Copy, Default)]
struct Cursor {
    chunk: usize,
    offset: usize,
}

/// Sends `chunks` into `socket` through a pipe. The socket must have nothing buffered for
/// it elsewhere. After an error part of the frame may have been sent: the connection must
/// close.
pub async fn send(socket: &TcpStream, chunks: Vec<Chunk>) -> io::Result<()> {
    let pipe = Arc::new(Pipe::new()?);
    let chunks: Arc<[Chunk]> = chunks.into();
    let mut at = Cursor::default();
    while at.chunk < chunks.len() {
        let (filler, frame) = (pipe.clone(), chunks.clone());
        let (filled, next) = on_storage_thread(move || filler.fill(&frame, at)).await?;
        pipe.drain(socket, filled).await?;
        at = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use samsa_storage::LogConfig;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::topics::internal::{encode_batch, record};
    use crate::topics::{Isolation, Partition};

    /// A frame several pipes long, file ranges starting mid-page between small chunks, into
    /// a socket whose buffer fills: the peer reads the frame's bytes, in order, and then
    /// the next frame's.
    #[tokio::test]
    async fn frames_go_through_the_pipe_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let partition =
            Partition::open("t", 0, dir.path().join("t-0"), LogConfig::default(), 1, 1).unwrap();
        for batch in 0..6 {
            let records: Vec<_> = (0..300)
                .map(|i| {
                    let value = format!("batch {batch} record {i} ").repeat(1 + i as usize % 300);
                    record(Bytes::from(value), None, i, 0)
                })
                .collect();
            let batch = encode_batch(&records, "test").unwrap();
            partition.append_unsynced(batch, 0).unwrap();
        }
        let range = |offset| {
            partition
                .locate(offset, 64 << 20, Isolation::LogEnd)
                .unwrap()
                .records
                .unwrap()
        };
        let (all, tail) = (range(0), range(1500));
        assert!(all.len() > 3 * PIPE_CAPACITY, "{} bytes", all.len());
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&all.read().unwrap());
        expected.extend_from_slice(b"middle");
        expected.extend_from_slice(&tail.read().unwrap());
        let chunks = move || {
            vec![
                Chunk::Bytes(Bytes::from_static(b"head")),
                Chunk::File(all.clone()),
                Chunk::Bytes(Bytes::from_static(b"middle")),
                Chunk::File(tail.clone()),
                Chunk::Bytes(Bytes::new()),
            ]
        };

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let sender = tokio::spawn(async move {
            send(&socket, chunks()).await.unwrap();
            send(&socket, chunks()).await.unwrap();
            socket
        });
        for frame in 0..2 {
            let mut got = vec![0; expected.len()];
            peer.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "frame {frame} differs");
        }
        drop(sender.await.unwrap());
        assert_eq!(peer.read(&mut [0; 1]).await.unwrap(), 0, "nothing more");
    }
}
