//! A throwaway CA and a broker certificate for 127.0.0.1/localhost, made with the `openssl`
//! command line tool as the compat tests make theirs (`compat/tests/test_security.py`), so
//! both brokers can serve a TLS listener for the TLS produce figure.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// PEM files: the CA clients trust, the broker's certificate and its key (PKCS#8), and the
/// key followed by the certificate in one file (Kafka's `ssl.keystore.type=PEM`).
#[derive(Clone, Debug)]
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub keystore: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("openssl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

pub fn make(dir: &Path) -> io::Result<Certs> {
    fs::create_dir_all(dir)?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=samsa-bench CA",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    )?;
    let keystore = dir.join("broker-keystore.pem");
    let both =
        fs::read_to_string(dir.join("broker.key"))? + &fs::read_to_string(dir.join("broker.pem"))?;
    fs::write(&keystore, both)?;
    Ok(Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("broker.pem"),
        key: dir.join("broker.key"),
        keystore,
    })
}
