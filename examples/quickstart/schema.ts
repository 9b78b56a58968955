// The quickstart's schema, as an application team would write it for drizzle-kit.
// Each step below was one `drizzle-kit generate` (see README.md); the SQL is in ./drizzle.
import { bigint, bigserial, index, pgTable, text, timestamp } from "drizzle-orm/pg-core";

export const users = pgTable("users", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  email: text("email").notNull().unique(),
  name: text("name").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const projects = pgTable(
  "projects",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    ownerId: bigint("owner_id", { mode: "number" })
      .notNull()
      .references(() => users.id),
    name: text("name").notNull(),
    // step 3 added it as nullable, step 4 backfilled it, step 5 made it NOT NULL.
    slug: text("slug").notNull(),
  },
  (t) => [index("projects_owner_id_idx").on(t.ownerId)],
);
