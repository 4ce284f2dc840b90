//! Cutting a segment back to a batch boundary, as a follower's truncation does: the log
//! and both indexes, reading only the batch headers after the last index entry kept, so a
//! leader change costs the same whatever the segment's size.

use super::*;

impl Segment {
    /// Keeps the first `position` bytes, which must end a batch. The log is synced; the
    /// indexes need not be, as a crash recovers the (now active) segment from its log.
    pub fn truncate_to(&mut self, position: u64) -> Result<(), StorageError> {
        if position >= self.size {
            return Ok(());
        }
        let cut = u32::try_from(position).map_err(|_| too_big(position))?;
        self.offset_index.truncate_to_position(cut)?;
        let (from, _) = self.last_indexed();
        // The batches after the last entry kept: where the segment now ends, and whether
        // one of them holds its largest timestamp.
        let mut next_offset = self.base_offset;
        let mut scanned_max = (-1, self.base_offset);
        let mut at = from;
        while at < position {
            let header = self.header_at(at)?;
            if header.max_timestamp > scanned_max.0 {
                scanned_max = (header.max_timestamp, header.base_offset);
            }
            next_offset = header.next_offset();
            at += header.total_size() as u64;
        }
        if at != position {
            return Err(self.corrupt(position, "truncation point is not a batch boundary"));
        }
        self.log.set_len(position)?;
        durable::sync_data(&self.log, &self.log_path)?;
        self.time_index
            .truncate_to_offset(self.relative(next_offset))?;
        // The last time entry kept is the largest timestamp up to some kept batch; one
        // scanned past it may be larger. On a tie the entry names the earlier batch.
        let (max_timestamp, offset_of_max) = match self.time_index.last() {
            Some(e) if e.timestamp >= scanned_max.0 => {
                (e.timestamp, self.base_offset + i64::from(e.relative_offset))
            }
            _ => scanned_max,
        };
        self.max_timestamp = max_timestamp;
        self.offset_of_max_timestamp = offset_of_max;
        self.size = position;
        self.next_offset = next_offset;
        self.bytes_since_index_entry = position - from;
        self.first_batch_timestamp = if position == 0 {
            None
        } else {
            Some(self.header_at(0)?.max_timestamp)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::recover_segment;
    use crate::testutil::{batch_with, headers_of, Codec};

    /// Batches of one to three records whose timestamps rise and fall, with an index entry
    /// every few batches; `sealed` as a rolled segment is, or active.
    fn written(dir: &Path, sealed: bool) -> (Segment, Vec<u64>) {
        let mut segment = Segment::create(dir, 100, 250, 0).unwrap();
        let mut boundaries = vec![0];
        let mut next = 100;
        for i in 0..24i64 {
            // Pairs of batches share a max timestamp, which rises every pair.
            let ts = [50 + i * 7 % 40, 60 + 3 * (i - i % 2), 55];
            let mut bytes = batch_with(&ts[..(i % 3 + 1) as usize], Codec::None).to_vec();
            batch::assign_offset_and_epoch(&mut bytes, next, 0);
            let headers = headers_of(&bytes);
            next = headers[0].next_offset();
            segment.append(&bytes, &headers).unwrap();
            boundaries.push(segment.size());
        }
        if sealed {
            segment.finish().unwrap();
        }
        (segment, boundaries)
    }

    /// What a reader can observe of a segment.
    fn observed(segment: &Segment) -> Vec<String> {
        let mut seen = vec![format!(
            "size {} next {} max {} at {} first {:?} since {}",
            segment.size,
            segment.next_offset,
            segment.max_timestamp,
            segment.offset_of_max_timestamp,
            segment.first_batch_timestamp,
            segment.bytes_since_index_entry
        )];
        for ts in 0..180 {
            seen.push(format!(
                "ts {ts}: {:?}",
                segment.offset_for_timestamp(ts, 0).unwrap()
            ));
        }
        for offset in 100..segment.next_offset {
            let found = segment
                .find_batch(offset)
                .unwrap()
                .map(|(p, h)| (p, h.base_offset));
            seen.push(format!("offset {offset}: {found:?}"));
        }
        seen.push(format!("{:?}", segment.max_timestamp_record().unwrap()));
        seen
    }

    #[test]
    fn truncation_reads_as_a_segment_rebuilt_from_its_cut_log() {
        let dir = tempfile::tempdir().unwrap();
        let (_, boundaries) = written(dir.path(), false);
        for (&cut, sealed) in boundaries.iter().flat_map(|c| [(c, false), (c, true)]) {
            let case = tempfile::tempdir().unwrap();
            let (mut segment, _) = written(case.path(), sealed);
            segment.truncate_to(cut).unwrap();
            let truncated = observed(&segment);
            assert_eq!(segment.log_file().metadata().unwrap().len(), cut);
            // The index files hold just the entries kept, and seal as a rolled one does.
            segment.finish().unwrap();
            let reopened = Segment::open(case.path(), 100, 250, 0).unwrap();
            reopened.check_indexes(Some(segment.next_offset)).unwrap();
            assert_eq!(reopened.last_indexed(), segment.last_indexed());
            recover_segment(&mut segment).unwrap();
            assert_eq!(
                truncated,
                observed(&segment),
                "cut at {cut}, sealed: {sealed}"
            );
        }
    }

    #[test]
    fn truncation_refuses_a_point_inside_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut segment, boundaries) = written(dir.path(), true);
        let size = segment.size;
        assert!(segment.truncate_to(boundaries[5] + 1).is_err());
        assert_eq!(segment.size, size);
        segment.truncate_to(size + 10).unwrap();
        assert_eq!(segment.size, size);
    }
}
