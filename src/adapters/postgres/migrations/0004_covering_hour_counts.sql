-- The analytics reads of the hour counts (a series over a window, the totals per type) find every
-- column they need in this index: an index-only scan. Through the primary key alone they visit
-- one heap page per count row, since a workspace's rows lie wherever they were written among
-- everyone's (a 30-day hourly series: about 4,300 heap pages for 5,754 rows; here about 100
-- index pages).
--
-- UNIQUE, so that it is an arbiter of the appends' ON CONFLICT exactly like the primary key it
-- repeats (a later migration may drop that one). Built inside the migration's transaction:
-- appends wait while it is built (0.7 s and 75 MB for the 576,000 hour rows of 10 million events).
CREATE UNIQUE INDEX counts_hour_covering
    ON eventcore.counts_hour (workspace_id, project_id, bucket, event_type) INCLUDE (count);

-- An index-only scan skips the heap only on pages the visibility map holds all-visible, and the
-- appends keep updating the newest hours: vacuum the table after 1 % of it changed, not 20 %.
ALTER TABLE eventcore.counts_hour SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01
);
