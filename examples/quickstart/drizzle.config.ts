// drizzle-kit's configuration for the quickstart. `generate` needs no database; pgshift, not
// `drizzle-kit migrate`, applies the folder (DATABASE_URL is read by pgshift).
export default {
  dialect: "postgresql",
  schema: "./schema.ts",
  out: "./drizzle",
};
