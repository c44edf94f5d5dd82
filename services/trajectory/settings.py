"""Settings of the trajectory service: the shared ones (``XJ_`` prefix) plus its own."""

from __future__ import annotations

from shared.config import Settings


class TrajectorySettings(Settings):
    """The shared settings plus the trajectory service's own (``XJ_`` prefix)."""

    retention_days: float = 30.0  # XJ_RETENTION_DAYS: feeds received longer ago are deleted unless held
    purge_every_s: float = 3600.0  # XJ_PURGE_EVERY_S: how often retention (and compaction) runs
    compact_lookback_s: float = 2 * 86400.0  # XJ_COMPACT_LOOKBACK_S: compaction merges rider-hours with chunks received this recently
    feed_batch: int = 500  # XJ_FEED_BATCH: feed messages per handler call
    gps_batch: int = 20_000  # XJ_GPS_BATCH: rider.gps records per batch of the Kafka worker
    request_batch: int = 16  # XJ_REQUEST_BATCH: assessment requests per handler call
    feed_within_s: float = 0.2  # XJ_FEED_WITHIN_S: the worker's batch waits at most this long
    partitions: int = 6  # XJ_PARTITIONS: partitions of the topics the worker declares
    gap_settle_s: float = 0.5  # XJ_GAP_SETTLE_S: wait before classifying a closed gap (pings in flight)
    gap_sync_max_s: float = 30.0  # XJ_GAP_SYNC_MAX_S: longest wait for the feeds on the broker to be stored before a gap is judged or a request answered (the request then fails, saying to ask again)
    gap_gps_wait_s: float = 600.0  # XJ_GAP_GPS_WAIT_S: an uploaded gap waits this long for the rider's GPS to reach past it before it is judged on what is stored
    gap_quiet_s: float = 2.0  # XJ_GAP_QUIET_S: a rider's uploaded gaps are looked for once his uploads were quiet this long
    gap_lease_s: float = 60.0  # XJ_GAP_LEASE_S: a gap claimed and not flagged after this is taken again
    gap_sweep_s: float = 15.0  # XJ_GAP_SWEEP_S: how often unflagged gaps are looked for
    gap_rebuild_s: float = 6 * 3600.0  # XJ_GAP_REBUILD_S: platform events a starting worker replays
    worker_group: str = "xianjie-trajectory"  # XJ_WORKER_GROUP: faust app id = consumer group
    worker_web_port: int = 0  # XJ_WORKER_WEB_PORT: the worker's health endpoint (faust web); 0: off
