// ESM resolve hook for kit.mjs: `drizzle-orm[/...]` -> the chosen line's package, resolved from
// tools/node/node_modules (drizzle-kit loads drizzle-orm with dynamic `import()` as well).
let orm = "drizzle-orm";
let parentURL = import.meta.url;

export async function initialize(data) {
  orm = data.orm;
  parentURL = data.parentURL;
}

export async function resolve(specifier, context, next) {
  if (specifier === "drizzle-orm" || specifier.startsWith("drizzle-orm/")) {
    return next(orm + specifier.slice("drizzle-orm".length), { ...context, parentURL });
  }
  return next(specifier, context);
}
