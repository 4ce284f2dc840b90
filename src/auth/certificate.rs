//! Principals of TLS clients. Kafka names a client on an SSL listener by its certificate's
//! subject: `User:` and the distinguished name as Java's `X500Principal.getName()` prints it
//! (RFC 2253), so ACLs written for Kafka's mTLS users hold unchanged here.

use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::Principal;

/// The principal of a client that presented `certificate` (DER). `None` if it cannot be
/// parsed; the handshake already verified it, so that does not happen in practice.
pub fn principal(certificate: &[u8]) -> Option<Principal> {
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    Some(Principal::user(&rfc2253(cert.subject())))
}

/// RFC 2253: the relative names last to first, attributes Java has a keyword for by that
/// keyword, any other attribute (or a value that is not a string) as its OID and `#` with
/// the hex of its DER encoding.
fn rfc2253(name: &X509Name) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let value = attribute.attr_value();
                    match (keyword(&oid), string_value(value)) {
                        (Some(key), Some(text)) => format!("{key}={}", escape(&text)),
                        (key, _) => format!("{}=#{}", key.unwrap_or(&oid), hex(value)),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The attribute keywords `X500Principal.getName()` (RFC 2253 format) uses.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

fn string_value(value: &Any) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        // T.61 as Latin-1, which is how Java reads it in practice.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// Backslash before RFC 2253's special characters, as Java escapes them: `=` and `#`
/// wherever they stand, a space only at either end.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '=' | '+' | '"' | '\\' | '<' | '>' | '#' | ';')
            || ((i == 0 || i == last) && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(value: &Any) -> String {
    let der = value.to_der_vec().unwrap_or_default();
    der.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate made by openssl with every kind of special character in its subject;
    /// the expected name is what Java 17's `X509Certificate.getSubjectX500Principal().getName()`
    /// printed for the same file.
    #[test]
    fn subjects_print_as_java_prints_them() {
        let pem = include_str!("testdata/client-subject.pem");
        let der = pem_to_der(pem);
        let principal = principal(&der).unwrap();
        assert_eq!(
            principal.as_str(),
            r#"User:1.2.840.113549.1.9.1=#160b774061636d652e74657374,CN=\ writer\#1\=a\<b\>c\;d\"e\\f\ ,OU=eng+UID=42,O=Acme\, Inc.,C=US"#
        );
    }

    fn pem_to_der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn escapes_what_rfc_2253_requires() {
        assert_eq!(escape("a,b+c=d"), "a\\,b\\+c\\=d");
        assert_eq!(escape(" #x "), "\\ \\#x\\ ");
        assert_eq!(escape("a b"), "a b");
    }
}
