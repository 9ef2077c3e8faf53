-- One batch of the feature store (features/store.py): the `bar_features_priced` rows of one interval (the
-- variable chunk_interval) and a list of symbols (chunk_symbols), with the UTC year of ts that names the
-- partition. Run on a connection whose lake_bars see only the batch's own bars; computed by the view as it
-- streams. (Variables, not parameters: the store fetches the rows through a relation, whose Arrow result is
-- collected by every thread; a prepared statement's result is converted by one thread after the query.)
--
-- The news and market columns of `features_priced` (sql/views/059_features_priced.sql: bar_news and
-- market_context, as-of joins) are added by features/store.py: each bar takes the row of its symbol's news
-- timeline (news_timeline.sql) with the greatest instant strictly before its available_at, and the row of the
-- interval's market timeline (market_timeline.sql) with the greatest instant at or before it, found by a
-- binary search of the timeline's sorted instants; the rules that depend on the bar's own available_at are
-- then applied by market_context_bars.sql. (In SQL, each as-of join sorted the batch's bars once more, and
-- joining their rows back to the bars cost a hash table of every bar: together as much as the windows.)
-- No ORDER BY: features/store.py orders each partition's rows by ts as it takes them (a sort of the row
-- numbers, not of the wide rows).
SELECT symbol, ts, available_at, asset_class, calendar, trading_day, segment_no, segment_pos, warmup,
       ret_1, ret_5, ret_15, ret_60, vol_15, vol_60, rsi_14, volume_z_60, range_hl, range_mean_15, body,
       gap_open, idle_minutes, minute_of_day, day_of_week, tod_sin, tod_cos, minutes_since_open,
       minutes_to_close, open, high, low, close,
       -- the UTC year by arithmetic (make_timestamp of the epoch is the UTC wall clock): year(ts) of a
       -- TIMESTAMPTZ goes through the ICU calendar, ten times the cost
       year(make_timestamp(epoch_us(ts))) AS year
FROM bar_features_priced
WHERE "interval" = getvariable('chunk_interval') AND list_contains(getvariable('chunk_symbols'), symbol);
