-- The sketches are compressed with LZ4 instead of PostgreSQL's default pglz. Every append
-- rewrites the sketch of each hour and each declared value it adds persons to, and a sketch past
-- 2 KiB is compressed on every write: with pglz a 16 KiB sketch cost about 1 ms of the server's
-- CPU per write, with lz4 about 0.27 ms, and uncompressed about the same as lz4 but half again
-- as large on disk (bench/README.md, "Dimensions"). Values already stored keep their
-- compression until rewritten (reading either is the same). A server built without lz4 stores
-- them uncompressed instead.
DO $$
BEGIN
    ALTER TABLE eventcore.users_hour ALTER COLUMN sketch SET COMPRESSION lz4;
    ALTER TABLE eventcore.dims_day ALTER COLUMN sketch SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE eventcore.users_hour ALTER COLUMN sketch SET STORAGE EXTERNAL;
    ALTER TABLE eventcore.dims_day ALTER COLUMN sketch SET STORAGE EXTERNAL;
END
$$;
