//! Fetch sessions (KIP-227): opening one, incremental answers (what changed only), forgotten
//! partitions, unknown topics added to a session, closing, and every session error.

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::{ApiKey, FetchResponse};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{
    forgetting, produce_request, session_fetch_request, versions, FIRST_VERSION_WITH_TOPIC_IDS,
};
use samsa_protocol_tests::differential::{Answer, Differential, Side};

use crate::{topic_ref, T0, UNKNOWN};

/// Each broker's id of the session a case opened (they are random, so they differ).
#[derive(Clone, Copy, Default)]
struct Ids {
    samsa: i32,
    kafka: i32,
}

impl Ids {
    fn of(answers: &(Answer<FetchResponse>, Answer<FetchResponse>)) -> Ids {
        let id = |a: &Answer<FetchResponse>| a.response().map_or(0, |r| r.session_id);
        Ids {
            samsa: id(&answers.0),
            kafka: id(&answers.1),
        }
    }

    fn on(self, side: &Side) -> i32 {
        if side.name == "samsa" {
            self.samsa
        } else {
            self.kafka
        }
    }
}

#[test]
fn fetch_sessions() {
    let mut d = Differential::start("fetch_sessions");
    let topic = d.topic("t");
    d.create_topic(&topic, 3, &[]);
    let mut ends = [0i64; 3];
    let produce = |d: &mut Differential, partition: i32, ends: &mut [i64; 3]| {
        let records = batch(&messages("r", 2, *T0));
        d.compare("setup-produce", 9, |s| {
            produce_request(&topic_ref(s, &topic), partition, records.clone(), -1, 9)
        });
        ends[partition as usize] += 2;
    };
    let max = *versions(ApiKey::Fetch).end();
    for v in [7, 12, max] {
        produce(&mut d, 0, &mut ends);
        let at = |p: i32, ends: &[i64; 3]| (p, ends[p as usize]);
        let fetch = |ids: Ids, parts: Vec<(i32, i64)>, epoch: i32| {
            let topic = topic.clone();
            move |s: &Side| {
                session_fetch_request(&topic_ref(s, &topic), &parts, v, ids.on(s), epoch)
            }
        };
        // Partition 0 from before its new records, the others at their ends.
        let first = vec![(0, ends[0] - 2), at(1, &ends), at(2, &ends)];
        let ids = Ids::of(&d.compare("open", v, fetch(Ids::default(), first, 0)));
        d.compare("nothing-changed", v, fetch(ids, vec![at(0, &ends)], 1));
        produce(&mut d, 1, &mut ends);
        d.compare("new-records", v, fetch(ids, Vec::new(), 2));
        d.compare("caught-up", v, fetch(ids, vec![at(1, &ends)], 3));
        d.compare("wrong-epoch", v, fetch(ids, Vec::new(), 7));
        d.compare("forget", v, |s| {
            let t = topic_ref(s, &topic);
            forgetting(fetch(ids, Vec::new(), 4)(s), &t, &[2], v)
        });
        produce(&mut d, 2, &mut ends);
        d.compare("forgotten-not-sent", v, fetch(ids, Vec::new(), 5));
        // A partition of a topic neither broker has, added to the session.
        d.compare("add-unknown-topic", v, |s| {
            let mut r = fetch(ids, Vec::new(), 6)(s);
            r.topics.push(unknown_topic(v));
            r
        });
        d.compare("unknown-topic-again", v, fetch(ids, Vec::new(), 7));
        d.compare("other-naming", v, |s| {
            let other = if v >= FIRST_VERSION_WITH_TOPIC_IDS {
                12
            } else {
                max
            };
            session_fetch_request(&topic_ref(s, &topic), &[], other, ids.on(s), 8)
        });
        d.compare("close", v, fetch(ids, vec![at(0, &ends)], -1));
        d.compare("closed", v, fetch(ids, Vec::new(), 8));

        // A session whose partitions are all forgotten ends: answered without a session.
        let ids = Ids::of(&d.compare("open-one", v, fetch(Ids::default(), vec![at(0, &ends)], 0)));
        d.compare("forget-all", v, |s| {
            let t = topic_ref(s, &topic);
            forgetting(fetch(ids, Vec::new(), 1)(s), &t, &[0], v)
        });
        d.compare("emptied", v, fetch(ids, Vec::new(), 2));
        // Epoch 0 naming a session closes it and opens a new one.
        let ids = Ids::of(&d.compare("reopen-1", v, fetch(Ids::default(), vec![at(0, &ends)], 0)));
        d.compare("reopen-2", v, fetch(ids, vec![at(0, &ends)], 0));
        d.compare("reopened-old", v, fetch(ids, Vec::new(), 1));
    }
    for (case, id) in [
        ("unknown-id", 12345),
        ("id-zero", 0),
        ("negative-id", -5),
        ("id-past-the-shards", i32::MAX),
    ] {
        d.compare(case, max, |s| {
            session_fetch_request(&topic_ref(s, &topic), &[], max, id, 1)
        });
    }
    // An unknown partition and an unknown topic before a known one: Kafka answers the
    // partitions it read first, and those it refused after them.
    for v in [12, max] {
        d.compare("refused-last", v, |s| {
            let t = topic_ref(s, &topic);
            let mut r = session_fetch_request(&t, &[(9, 0)], v, 0, -1);
            r.topics.push(unknown_topic(v));
            r.topics
                .extend(session_fetch_request(&t, &[(0, 0)], v, 0, -1).topics);
            r
        });
    }
    d.finish();
}

fn unknown_topic(version: i16) -> FetchTopic {
    let request = session_fetch_request(&UNKNOWN, &[(0, 0)], version, 0, -1);
    request.topics.into_iter().next().expect("one topic")
}
