//! `compression.type` and the codec levels of KIP-390, as Kafka names, bounds and defaults
//! them, for the broker-wide defaults here and the topic configs that override them.

use samsa_storage::{Compression, TargetCompression};

/// Kafka's `BrokerCompressionType` names, in the order its validator lists them.
pub const COMPRESSION_TYPES: [&str; 6] =
    ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// zlib's own default (`Deflater.DEFAULT_COMPRESSION`), level 6.
pub const GZIP_DEFAULT_LEVEL: i32 = -1;
pub const LZ4_DEFAULT_LEVEL: i32 = 9;
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// Kafka's check of a `compression.type` value; the reason is its ConfigException's.
pub fn check_type(value: &str) -> Result<(), String> {
    if COMPRESSION_TYPES.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "String must be one of: {}",
            COMPRESSION_TYPES.join(", ")
        ))
    }
}

/// Which codec's level a `compression.<codec>.level` key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelOf {
    Gzip,
    Lz4,
    Zstd,
}

/// Kafka's check of a level (`CompressionType.levelValidator`).
pub fn check_level(codec: LevelOf, value: &str) -> Result<(), String> {
    let Ok(level) = value.trim().parse::<i32>() else {
        return Err("Not a number of type INT".into());
    };
    let (min, max) = match codec {
        LevelOf::Gzip => {
            return if level > 9 || (level < 1 && level != GZIP_DEFAULT_LEVEL) {
                Err(format!(
                    "Value must be between 1 and 9 or equal to {GZIP_DEFAULT_LEVEL}"
                ))
            } else {
                Ok(())
            };
        }
        LevelOf::Lz4 => (1, 17),
        LevelOf::Zstd => (-131_072, 22),
    };
    if level < min {
        Err(format!("Value must be at least {min}"))
    } else if level > max {
        Err(format!("Value must be no more than {max}"))
    } else {
        Ok(())
    }
}

/// The codec batches are kept in for a valid `compression.type` and the three levels; `None`
/// for `producer`, which keeps each batch as it came.
pub fn target(compression_type: &str, gzip: i32, lz4: i32, zstd: i32) -> Option<TargetCompression> {
    let (codec, level) = match compression_type {
        "uncompressed" => (Compression::None, 0),
        "gzip" => (Compression::Gzip, gzip),
        "snappy" => (Compression::Snappy, 0),
        "lz4" => (Compression::Lz4, lz4),
        "zstd" => (Compression::Zstd, zstd),
        _ => return None,
    };
    Some(TargetCompression { codec, level })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        for ok in COMPRESSION_TYPES {
            assert!(check_type(ok).is_ok());
        }
        assert_eq!(
            check_type("none").unwrap_err(),
            "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert!(check_level(LevelOf::Gzip, "-1").is_ok());
        assert!(check_level(LevelOf::Gzip, "9").is_ok());
        assert_eq!(
            check_level(LevelOf::Gzip, "0").unwrap_err(),
            "Value must be between 1 and 9 or equal to -1"
        );
        assert_eq!(
            check_level(LevelOf::Lz4, "18").unwrap_err(),
            "Value must be no more than 17"
        );
        assert_eq!(
            check_level(LevelOf::Zstd, "-131073").unwrap_err(),
            "Value must be at least -131072"
        );
        assert!(check_level(LevelOf::Zstd, "-131072").is_ok());
        assert_eq!(
            check_level(LevelOf::Zstd, "fast").unwrap_err(),
            "Not a number of type INT"
        );
    }

    #[test]
    fn producer_keeps_batches_as_they_come() {
        assert_eq!(target("producer", -1, 9, 3), None);
        assert_eq!(
            target("zstd", -1, 9, 7),
            Some(TargetCompression {
                codec: Compression::Zstd,
                level: 7
            })
        );
        assert_eq!(
            target("uncompressed", -1, 9, 3).unwrap().codec,
            Compression::None
        );
    }
}
