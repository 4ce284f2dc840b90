//! Reading a broker's Prometheus endpoint in tests.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result};

/// GETs `path` from 127.0.0.1:`port` with HTTP/1.1 and returns (status line, body).
pub fn get(port: u16, path: &str) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("not an HTTP response")?;
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The value of the sample whose name-and-labels are exactly `series`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The current value of `series` on the endpoint at `port`.
pub fn scrape(port: u16, series: &str) -> Result<Option<f64>> {
    Ok(sample(&get(port, "/metrics")?.1, series))
}
