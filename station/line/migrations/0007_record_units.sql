-- breaking: measurement values and numeric limits are now in the unit each measurement names (record schema 2); stations of the earlier software write SI numbers under Ah and % and cannot write here.
-- Before this, a charge of -41.9 Ah was stored as -151006 (coulombs) labelled Ah and a SOC of
-- 30 % as 0.3 labelled %. Every such row, its limits (min, max, nominal, marginal; lsl, usl)
-- and its journalled event are rewritten in the unit they name. Arithmetic in numeric, so 0.3
-- becomes exactly 30. Units whose factor is 1 (V, A, ohm, s, ...) are untouched.
CREATE TEMPORARY TABLE line_unit_factor (unit TEXT PRIMARY KEY, factor NUMERIC NOT NULL) ON COMMIT DROP;
INSERT INTO line_unit_factor VALUES ('Ah', 3600), ('Wh', 3600), ('%', 0.01), ('ppm', 0.000001);

CREATE FUNCTION pg_temp.line_in_unit(v JSONB, factor NUMERIC) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN to_jsonb(((v #>> '{}')::numeric / factor)::double precision)
                ELSE v END
$$;

CREATE FUNCTION pg_temp.line_limits_in_unit(l JSONB, factor NUMERIC) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN l IS NULL OR jsonb_typeof(l) <> 'object' THEN l
                ELSE (SELECT COALESCE(jsonb_object_agg(key, CASE WHEN key IN ('min', 'max', 'nominal', 'marginal')
                                                                 THEN pg_temp.line_in_unit(value, factor) ELSE value END),
                                      '{}'::jsonb)
                      FROM jsonb_each(l)) END
$$;

UPDATE measurements AS m
   SET value_num = (m.value_num::numeric / f.factor)::double precision,
       value_json = pg_temp.line_in_unit(m.value_json, f.factor),
       limits = pg_temp.line_limits_in_unit(m.limits, f.factor),
       lsl = m.lsl / f.factor,
       usl = m.usl / f.factor
  FROM line_unit_factor AS f
 WHERE m.unit = f.unit;

UPDATE events AS e
   SET data = CASE WHEN e.data ? 'limits'
                   THEN jsonb_set(jsonb_set(e.data, '{value}', pg_temp.line_in_unit(e.data -> 'value', f.factor)),
                                  '{limits}', pg_temp.line_limits_in_unit(e.data -> 'limits', f.factor))
                   ELSE jsonb_set(e.data, '{value}', pg_temp.line_in_unit(e.data -> 'value', f.factor)) END
  FROM line_unit_factor AS f
 WHERE e.kind = 'MeasurementTaken' AND e.data ->> 'unit' = f.unit AND e.data ? 'value';
