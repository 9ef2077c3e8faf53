-- Train, validation and test periods over the lake's bar range [min(ts), max(available_at)), from the
-- [splits] settings; half-open [start_at, end_at), disjoint and in that order, with an embargo between
-- consecutive periods: embargo_days whole days when set (> 0), else embargo_bars bars of the lake's shortest
-- interval (60 one-minute bars by default). Which bars belong to which period: bar_splits.
--   method 'fraction': the range less two embargoes is cut train_fraction / validation_fraction / rest,
--                      each length rounded down to a whole minute.
--   method 'date':     train ends at the end of train_end (UTC), validation at the end of validation_end,
--                      test runs to the end of the range.
-- Every boundary is clamped into the range, so a period can be empty (start_at = end_at) but never
-- overlaps another. features/splits.py computes the same periods in Python.
CREATE OR REPLACE VIEW splits AS
WITH r AS (
    SELECT epoch_us(min(ts)) AS s, epoch_us(max(available_at)) AS e FROM bars HAVING count(*) > 0
),
iv AS (
    SELECT min(TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END) AS bar_minutes
    FROM (SELECT DISTINCT "interval" FROM bars)
),
em AS (
    SELECT CASE WHEN st.embargo_days > 0 THEN st.embargo_days * 86400000000
                ELSE st.embargo_bars * coalesce(iv.bar_minutes, 1) * 60000000 END AS emb
    FROM lake_settings st, iv
),
p AS (
    SELECT r.s, r.e, st.split_method,
           em.emb,
           greatest(r.e - r.s - 2 * em.emb, 0) AS usable,
           st.train_fraction, st.validation_fraction,
           epoch_us(timezone('UTC', (st.train_end::DATE + 1)::TIMESTAMP)) AS train_end_us,
           epoch_us(timezone('UTC', (st.validation_end::DATE + 1)::TIMESTAMP)) AS validation_end_us
    FROM r, lake_settings st, em
),
b AS (
    SELECT s, e, emb,
           CASE WHEN split_method = 'date' THEN train_end_us
                ELSE s + (floor(train_fraction * usable / 60000000.0) * 60000000)::BIGINT END AS b1,
           CASE WHEN split_method = 'date' THEN validation_end_us
                ELSE NULL END AS v_end,
           (floor(validation_fraction * usable / 60000000.0) * 60000000)::BIGINT AS lv,
           split_method
    FROM p
),
chain AS (
    SELECT s, e, b1, b1 + emb AS b2,
           CASE WHEN split_method = 'date' THEN greatest(b1 + emb, v_end) ELSE b1 + emb + lv END AS b3,
           emb
    FROM b
),
clamped AS (
    SELECT s, e,
           least(greatest(b1, s), e) AS c1,
           least(greatest(b2, s), e) AS c2,
           least(greatest(b3, s), e) AS c3,
           least(greatest(b3 + emb, s), e) AS c4
    FROM chain
)
SELECT split, split_no, timezone('UTC', make_timestamp(lo)) AS start_at, timezone('UTC', make_timestamp(hi)) AS end_at
FROM clamped,
     (VALUES ('train', 1), ('validation', 2), ('test', 3)) v(split, split_no),
     LATERAL (SELECT CASE split_no WHEN 1 THEN s WHEN 2 THEN c2 ELSE c4 END AS lo,
                     CASE split_no WHEN 1 THEN c1 WHEN 2 THEN c3 ELSE e END AS hi)
ORDER BY split_no;
