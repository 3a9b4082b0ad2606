-- Tables and sample rows of the Adaptive Card example (PostgreSQL). Run once:
--   psql "$DATABASE_URL" -f flows/adaptive_cards/data/setup.sql
CREATE TABLE IF NOT EXISTS sales_orgs (
    sales_org   text PRIMARY KEY,
    region      text NOT NULL,
    active      boolean NOT NULL DEFAULT true
);
CREATE TABLE IF NOT EXISTS card_users (
    user_id     text PRIMARY KEY,
    user_name   text NOT NULL,
    sales_org   text NOT NULL,
    language    text NOT NULL DEFAULT 'en'
);
-- Stage 1 merges the T2A snapshots into these two tables (upsert on their keys).
CREATE TABLE IF NOT EXISTS material (
    sales_org   text NOT NULL,
    material    text NOT NULL,
    description text,
    plant       text,
    stock       double precision,
    unit_price  double precision,
    PRIMARY KEY (sales_org, material)
);
CREATE TABLE IF NOT EXISTS gscm (
    sales_org   text NOT NULL,
    material    text NOT NULL,
    open_orders double precision,
    eta         text,
    PRIMARY KEY (sales_org, material)
);
-- Stage 2 upserts one card per user (the seed's user_scenario_result).
CREATE TABLE IF NOT EXISTS adaptive_cards (
    user_id     text PRIMARY KEY,
    sales_org   text NOT NULL,
    items       bigint NOT NULL,
    shortages   bigint NOT NULL,
    card_json   text NOT NULL
);

INSERT INTO sales_orgs (sales_org, region, active) VALUES
    ('KR10', 'APAC', true), ('JP20', 'APAC', true), ('DE30', 'EU', true),
    ('US40', 'AMER', true), ('BR50', 'AMER', false)
ON CONFLICT (sales_org) DO NOTHING;
INSERT INTO card_users (user_id, user_name, sales_org, language) VALUES
    ('u001', 'Kim Minji', 'KR10', 'ko'), ('u002', 'Park Joon', 'KR10', 'ko'),
    ('u003', 'Sato Yui', 'JP20', 'ja'), ('u004', 'Anna Weber', 'DE30', 'de'),
    ('u005', 'Jake Miller', 'US40', 'en'), ('u006', 'Lena Vogel', 'DE30', 'de')
ON CONFLICT (user_id) DO NOTHING;
