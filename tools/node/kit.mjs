#!/usr/bin/env node
// Run drizzle-kit of either line with the matching drizzle-orm:
//
//   node kit.mjs [--line stable|v1] <drizzle-kit arguments...>
//   e.g. (in a folder with drizzle.config.ts): node tools/node/kit.mjs --line v1 generate --name init
//
// drizzle-kit 1.0 rc and drizzle-orm 1.0 rc are installed under the npm aliases `drizzle-kit-v1`
// and `drizzle-orm-v1` beside the stable 0.x packages. drizzle-kit and the user's schema.ts both
// `require("drizzle-orm/...")`, so for `--line v1` every such request is resolved to
// `drizzle-orm-v1/...` instead: the same schema.ts then works with both lines.
import { createRequire } from "node:module";
import Module from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let args = process.argv.slice(2);
let line = "stable";
if (args[0] === "--line") {
  line = args[1];
  args = args.slice(2);
}
if (!["stable", "v1"].includes(line)) {
  console.error("kit.mjs: --line must be stable or v1");
  process.exit(2);
}

const orm = line === "v1" ? "drizzle-orm-v1" : "drizzle-orm";
const kit = line === "v1" ? "drizzle-kit-v1" : "drizzle-kit";
const modules = path.join(here, "node_modules");
const original = Module._resolveFilename;
Module._resolveFilename = function resolve(request, parent, ...rest) {
  // Resolve drizzle-orm from tools/node whatever folder the schema lives in.
  if (request === "drizzle-orm" || request.startsWith("drizzle-orm/")) {
    request = orm + request.slice("drizzle-orm".length);
    return original.call(this, require.resolve(request, { paths: [modules] }), parent, ...rest);
  }
  if (request === "drizzle-kit") {
    return original.call(this, require.resolve(kit, { paths: [modules] }), parent, ...rest);
  }
  return original.call(this, request, parent, ...rest);
};
// ...and with dynamic `import()`, which the ESM loader resolves: the same redirect there.
Module.register("./alias-hooks.mjs", import.meta.url, {
  data: { orm, parentURL: new URL("./package.json", import.meta.url).href },
});
process.argv = [process.argv[0], path.join(modules, kit, "bin.cjs"), ...args];
require(path.join(modules, kit, "bin.cjs"));
