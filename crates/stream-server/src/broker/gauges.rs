//! Gauges refreshed periodically: partition sizes and offsets, consumer-group lag, members
//! and generations, storage fsyncs, and the memory budget in use.

use super::Broker;

impl Broker {
    /// Updates partition-size, consumer-group and memory gauges (called periodically).
    pub fn refresh_gauges(&self) {
        for (topic, count) in self.store.topics() {
            for p in 0..count {
                let Ok(log) = self.store.partition(&topic, p) else {
                    continue;
                };
                let labels = [("topic", topic.clone()), ("partition", p.to_string())];
                metrics::gauge!("strp_partition_size_bytes", &labels).set(log.size_bytes() as f64);
                metrics::gauge!("strp_partition_high_watermark", &labels)
                    .set(log.high_watermark() as f64);
                metrics::gauge!("strp_partition_log_start_offset", &labels)
                    .set(log.log_start_offset() as f64);
            }
        }
        // Every committed offset, so a group's lag shows (and grows) while none of its members
        // is connected, and across restarts: that is when lag matters most.
        let committed = self.offsets.all();
        for ((group, topic, p), off) in committed {
            let Ok(log) = self.store.partition(&topic, p) else {
                continue;
            };
            let lag = log.high_watermark().saturating_sub(off);
            metrics::gauge!("strp_consumer_group_lag", "group" => group.clone(), "topic" => topic.clone(), "partition" => p.to_string())
                .set(lag as f64);
        }
        for g in self.groups.summaries() {
            metrics::gauge!("strp_consumer_group_members", "group" => g.group.clone())
                .set(g.members.len() as f64);
            metrics::gauge!("strp_consumer_group_generation", "group" => g.group)
                .set(f64::from(g.generation));
        }
        // Compared with the produce count, this says how many produces share an fsync.
        metrics::gauge!("strp_log_fsyncs_total").set(self.store.fsyncs() as f64);
        metrics::gauge!("strp_log_fsync_seconds_total").set(self.store.fsync_time().as_secs_f64());
        metrics::gauge!("strp_memory_budget_in_use_bytes").set(self.memory.in_use() as f64);
        metrics::gauge!("strp_memory_budget_bytes").set(self.memory.limit() as f64);
    }
}
