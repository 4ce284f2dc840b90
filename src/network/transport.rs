//! A connection's byte stream as the connection uses it: split for its reader and its
//! writer, and, where nothing stands between the writer and the TCP socket, that socket, so
//! that fetched records can be spliced into it from their files (`send_file`).

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub trait Transport: Send + 'static {
    type Reader: AsyncRead + Send + Unpin + 'static;
    type Writer: AsyncWrite + Send + Unpin + 'static;

    fn split(self) -> (Self::Reader, Self::Writer);

    /// The socket the writer writes to unchanged; `None` under TLS, which encrypts in
    /// memory.
    fn socket(writer: &Self::Writer) -> Option<&TcpStream>;
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }

    fn socket(writer: &OwnedWriteHalf) -> Option<&TcpStream> {
        Some(writer.as_ref())
    }
}

impl Transport for TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }

    fn socket(_: &Self::Writer) -> Option<&TcpStream> {
        None
    }
}
