//! KIP-467: a Produce answer that names the records its batch was refused for (Produce v8+),
//! in Kafka's words, so a client fails those records as invalid and the rest of the batch
//! with the batch's error. Kafka's `LogValidator.processRecordErrors` and
//! `ProduceResponse.RecordError` are the models.

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse,
};
use samsa_storage::{RecordFault, RefusedRecord};

use super::str_bytes;

/// Fills in `answer`'s record errors and error message for the records of a batch to
/// partition `partition` of `topic` that were refused. The error code is the caller's
/// (`BrokerError::code`).
pub fn describe(
    answer: &mut PartitionProduceResponse,
    topic: &str,
    partition: i32,
    refused: &[RefusedRecord],
) {
    let messages: Vec<(i32, String)> = refused
        .iter()
        .map(|r| {
            let index = i32::try_from(r.index).unwrap_or(i32::MAX);
            (index, fault_message(&r.fault, topic, partition))
        })
        .collect();
    let timestamps = refused.iter().any(|r| r.fault.is_timestamp());
    fill(answer, messages, timestamps);
}

/// The same for records refused above the log (schema id validation), each with its reason.
pub fn describe_reasons(answer: &mut PartitionProduceResponse, refused: &[(usize, String)]) {
    let messages = refused
        .iter()
        .map(|(index, why)| (i32::try_from(*index).unwrap_or(i32::MAX), why.clone()))
        .collect();
    fill(answer, messages, false);
}

fn fill(answer: &mut PartitionProduceResponse, messages: Vec<(i32, String)>, timestamps: bool) {
    let message = if timestamps {
        "One or more records have been rejected due to invalid timestamp".to_owned()
    } else {
        // Java's List.toString of the first three RecordErrors.
        let shown: Vec<String> = messages
            .iter()
            .take(3)
            .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only \
             showing the first three errors at most: [{}]",
            messages.len(),
            shown.join(", ")
        )
    };
    answer.error_message = Some(str_bytes(&message));
    answer.record_errors = messages
        .into_iter()
        .map(|(index, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(str_bytes(&message)))
        })
        .collect();
}

fn fault_message(fault: &RecordFault, topic: &str, partition: i32) -> String {
    match fault {
        RecordFault::NoKey => format!(
            "Compacted topic cannot accept message without key in topic partition \
             {topic}-{partition}"
        ),
        // Kafka prints the record with DefaultRecord.toString.
        RecordFault::ProducerLogAppendTime {
            offset,
            timestamp,
            key_len,
            value_len,
        } => format!(
            "Invalid timestamp type in message DefaultRecord(offset={offset}, \
             timestamp={timestamp}, key={key_len} bytes, value={value_len} bytes). Producer \
             should not set timestamp type to LogAppendTime."
        ),
        RecordFault::TimestampOutOfRange {
            offset,
            timestamp,
            lower,
            upper,
        } => format!(
            "Timestamp {timestamp} of message with offset {offset} is out of range. The \
             timestamp should be within [{lower}, {upper}]"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_words_for_keyless_records() {
        let mut answer = PartitionProduceResponse::default();
        let refused: Vec<RefusedRecord> = [0, 2, 3, 5]
            .into_iter()
            .map(|index| RefusedRecord {
                index,
                fault: RecordFault::NoKey,
            })
            .collect();
        describe(&mut answer, "t", 4, &refused);
        let one = "Compacted topic cannot accept message without key in topic partition t-4";
        assert_eq!(
            answer.error_message.as_deref(),
            Some(
                format!(
                    "One or more records have been rejected due to 4 record errors in total, and \
                     only showing the first three errors at most: [RecordError(batchIndex=0, \
                     message='{one}'), RecordError(batchIndex=2, message='{one}'), \
                     RecordError(batchIndex=3, message='{one}')]"
                )
                .as_str()
            )
        );
        let indexes: Vec<i32> = answer.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, [0, 2, 3, 5]);
        assert_eq!(
            answer.record_errors[3].batch_index_error_message.as_deref(),
            Some(one)
        );
    }

    #[test]
    fn a_timestamp_fault_makes_the_message_about_timestamps() {
        let mut answer = PartitionProduceResponse::default();
        let refused = [RefusedRecord {
            index: 0,
            fault: RecordFault::ProducerLogAppendTime {
                offset: 0,
                timestamp: -1,
                key_len: 1,
                value_len: 3,
            },
        }];
        describe(&mut answer, "t", 0, &refused);
        assert_eq!(
            answer.error_message.as_deref(),
            Some("One or more records have been rejected due to invalid timestamp")
        );
        assert_eq!(
            answer.record_errors[0].batch_index_error_message.as_deref(),
            Some(
                "Invalid timestamp type in message DefaultRecord(offset=0, timestamp=-1, key=1 \
                 bytes, value=3 bytes). Producer should not set timestamp type to LogAppendTime."
            )
        );
    }
}
