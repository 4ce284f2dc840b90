use super::*;

#[test]
fn empty_file_gives_defaults() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
    assert_eq!(config.advertised(), ("127.0.0.1".to_owned(), 9092));
}

#[test]
fn flags_override_file() {
    let mut config = Config::from_toml("listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"").unwrap();
    config.apply(Overrides {
        listen: Some("127.0.0.1:2".parse().unwrap()),
        data_dir: Some("/b".into()),
        metrics_listen: None,
    });
    assert_eq!(config.listen.port(), 2);
    assert_eq!(config.data_dir, PathBuf::from("/b"));
}

#[test]
fn advertised_listener_overrides_listen() {
    let config = Config::from_toml("advertised_listener = \"broker.example:19092\"").unwrap();
    assert_eq!(config.advertised(), ("broker.example".to_owned(), 19092));
}

#[test]
fn explicit_keys_are_remembered() {
    let config = Config::from_toml("retention_ms = 5").unwrap();
    assert!(config.is_explicit("retention_ms"));
    assert!(!config.is_explicit("segment_bytes"));
}

#[test]
fn listeners_and_tls_parse() {
    let config = Config::from_toml(
        "[[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\"\n\
         [tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.listeners[0].protocol, SecurityProtocol::Ssl);
    let without_tls = Config::from_toml(
        "[[listener]]\nname = \"s\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\"\n",
    )
    .unwrap();
    assert!(without_tls.validate().is_err());
}

#[test]
fn sasl_listeners_need_mechanisms_and_valid_users() {
    let listener = "[[listener]]\nname = \"sasl\"\naddress = \"127.0.0.1:9094\"\nprotocol = \"SASL_PLAINTEXT\"\n";
    assert!(Config::from_toml(listener).unwrap().validate().is_err());
    let user = "[[sasl.scram_user]]\nname = \"alice\"\nmechanism = \"SCRAM-SHA-256\"\nsalt = \"c2FsdA==\"\n\
                iterations = 4096\nstored_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
                server_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";
    let config = Config::from_toml(&format!(
        "super_users = [\"User:admin\"]\nauthorizer = true\n{listener}[sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-512\"]\n{user}"
    ))
    .unwrap();
    config.validate().unwrap();
    let sasl = config.sasl.unwrap();
    assert_eq!(
        sasl.mechanisms,
        [
            SaslMechanism::Plain,
            SaslMechanism::Scram(ScramMechanism::Sha512)
        ]
    );
    assert_eq!(sasl.scram_users[0].stored_key.len(), 32);
    assert!(Config::from_toml("[sasl]\nmechanisms = [\"GSSAPI\"]\n").is_err());
    let short_iterations = user.replace("4096", "100");
    let config = Config::from_toml(&format!(
        "[sasl]\nmechanisms = [\"PLAIN\"]\n{short_iterations}"
    ))
    .unwrap();
    assert!(config.validate().is_err());
    assert!(Config::from_toml("super_users = [\"admin\"]")
        .unwrap()
        .validate()
        .is_err());
}

#[test]
fn unknown_keys_are_rejected() {
    assert!(Config::from_toml("no_such_key = 1").is_err());
}

#[test]
fn the_cluster_configs_parse() {
    for text in [
        include_str!("../../etc/cluster/node1.toml"),
        include_str!("../../etc/cluster/node2.toml"),
        include_str!("../../etc/cluster/node3.toml"),
    ] {
        let config = Config::from_toml(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.default_replication_factor, 3);
    }
}

#[test]
fn the_shipped_config_parses() {
    let text = include_str!("../../etc/samsa.toml");
    let config = Config::from_toml(text).unwrap();
    config.validate().unwrap();
}

#[test]
fn the_schema_registry_needs_tls_for_https_and_derives_its_url() {
    let config = Config::from_toml("[schema_registry]\nenabled = true\ntls = true\n").unwrap();
    assert!(config.validate().is_err(), "HTTPS without [tls]");
    let config = Config::from_toml(
        "advertised_listener = \"kafka-1:9092\"\n[tls]\ncert_file = \"c\"\nkey_file = \"k\"\n\
         [schema_registry]\nenabled = true\nlisten = \"0.0.0.0:8081\"\ntls = true\n\
         authentication = \"basic\"\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.registry_url().as_deref(),
        Some("https://kafka-1:8081")
    );
    let config =
        Config::from_toml("[schema_registry]\nenabled = true\nadvertised_url = \"https://r:1\"\n")
            .unwrap();
    assert!(
        config.validate().is_err(),
        "an https URL for a plain listener"
    );
    assert_eq!(Config::from_toml("").unwrap().registry_url(), None);
}
