-- The audit log's retention: its entries older than a time go, across every workspace, through
-- this one SECURITY DEFINER function (the application role may still neither UPDATE nor DELETE
-- an entry itself). These policies let the tables' owner read and delete audit rows only while
-- eventcore.definer_lookup is 'on', which the function sets around its statement, as the
-- lookups of 0003 do.
CREATE POLICY definer_lookup ON eventcore.audit_log FOR SELECT TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');
CREATE POLICY definer_expiry ON eventcore.audit_log FOR DELETE TO CURRENT_USER
    USING (current_setting('eventcore.definer_lookup', true) = 'on');

CREATE FUNCTION eventcore.expire_audit_log(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed bigint;
BEGIN
    PERFORM set_config('eventcore.definer_lookup', 'on', true);
    DELETE FROM eventcore.audit_log WHERE at < p_before;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('eventcore.definer_lookup', 'off', true);
    RETURN removed;
END
$$;
REVOKE ALL ON FUNCTION eventcore.expire_audit_log(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventcore.expire_audit_log(timestamptz) TO :"app_role";
