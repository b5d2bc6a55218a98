use super::*;

const PETSTORE_30: &str = include_str!("../../../tests/fixtures/openapi/petstore-3.0.yaml");
const PETSTORE_31: &str = include_str!("../../../tests/fixtures/openapi/petstore-3.1.json");
const EXPANDED_30: &str =
    include_str!("../../../tests/fixtures/openapi/petstore-expanded-3.0.json");

fn convert_text(root: &Node, args: &OpenApiArgs) -> (Draft, String) {
    let d = to_draft(root, args, "spec", "spec".into()).unwrap();
    let text = d.to_yaml();
    crate::convert::check(&text, "spec.yaml", None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (d, text)
}

fn task<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("- name: {name}\n"))
        .unwrap_or_else(|| panic!("{name} in {text}"));
    let rest = &text[start + 2..];
    &rest[..rest.find("\n      - ").unwrap_or(rest.len())]
}

#[test]
fn petstore_3_0_yaml_and_3_1_json_give_the_same_scenario() {
    let (d30, t30) = convert_text(
        &doc::read_yaml(PETSTORE_30).unwrap(),
        &OpenApiArgs::default(),
    );
    let (_, t31) = convert_text(
        &doc::read_json(PETSTORE_31).unwrap(),
        &OpenApiArgs::default(),
    );
    // One task per operation: the Petstore has 20.
    assert_eq!(d30.tasks.len(), 20, "{t30}");
    // The two documents differ in a few examples (3.1 gives `photoUrls` one); the operations,
    // paths, names and variables are the same.
    let outline = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                [
                    "- name:",
                    "path:",
                    "name:",
                    "method:",
                    "  petId:",
                    "  api_key:",
                ]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(outline(&t30), outline(&t31));
    assert!(t30.contains("host: http://petstore.swagger.io\n"), "{t30}");

    let get = task(&t30, "getPetById");
    assert!(
        get.contains("path: /v2/pet/{{ petId }}") && get.contains("name: /v2/pet/{petId}"),
        "{get}"
    );
    assert!(get.contains("tags:\n          - pet"), "{get}");
    // The operation's security: the API key from the environment, never from the document.
    assert!(get.contains("api_key: \"{{ api_key }}\""), "{get}");
    assert!(t30.contains("api_key: ${API_KEY:-CHANGE_ME}"), "{t30}");
    assert!(
        t30.contains("petId: \"1\"") || t30.contains("petId: 1"),
        "{t30}"
    );

    // A body generated from the schema through $refs: readOnly `id` left out, enum's first value.
    let add = task(&t30, "addPet");
    assert!(
        add.contains("method: POST") && add.contains("path: /v2/pet\n"),
        "{add}"
    );
    assert!(
        add.contains("name: doggie") && add.contains("status: available"),
        "{add}"
    );
    assert!(
        add.contains("photoUrls:\n") && !add.contains("\n            id:"),
        "{add}"
    );
    // A form body; a required query parameter with its enum's first value.
    let form = task(&t30, "updatePetWithForm");
    assert!(
        form.contains("form:") && form.contains("name: string"),
        "{form}"
    );
    let by_status = task(&t30, "findPetsByStatus");
    assert!(
        by_status.contains("query:\n") && by_status.contains("status: available"),
        "{by_status}"
    );
    // Query parameters from the document's order.
    let login = task(&t30, "loginUser");
    assert!(
        login.find("username:").unwrap() < login.find("password:").unwrap(),
        "{login}"
    );
    // Multipart uploads are left out, and said so.
    assert!(
        d30.notes
            .iter()
            .any(|n| n.contains("application/octet-stream") || n.contains("multipart")),
        "{:?}",
        d30.notes
    );
}

#[test]
fn petstore_expanded_merges_all_of_and_takes_host_and_tags_from_flags() {
    let args = OpenApiArgs {
        host: Some("http://127.0.0.1:8080/api".into()),
        ..OpenApiArgs::default()
    };
    let (d, text) = convert_text(&doc::read_json(EXPANDED_30).unwrap(), &args);
    assert!(text.contains("host: http://127.0.0.1:8080\n"), "{text}");
    assert_eq!(d.tasks.len(), 4, "{text}");
    let add = task(&text, "addPet");
    // NewPet (name, tag) merged from allOf in Pet's schema; the request body is NewPet itself.
    assert!(
        add.contains("name: string") && add.contains("tag: string"),
        "{add}"
    );
    assert!(text.contains("path: /api/pets/{{ id }}"), "{text}");

    let args = OpenApiArgs {
        tag: vec!["store".into()],
        ..OpenApiArgs::default()
    };
    let (d, _) = convert_text(&doc::read_yaml(PETSTORE_30).unwrap(), &args);
    assert!(d.tasks.iter().all(|t| t.tags == ["store"]) && d.tasks.len() == 4);
}

#[test]
fn recursive_schemas_stop_and_refs_resolve_with_escapes() {
    let spec = r##"
openapi: 3.1.0
info: { title: tree, version: "1" }
paths:
  /undeclared/{thing}:
    get:
      responses: { "200": { description: ok } }
  /nodes/{node-id}/children:
    parameters:
      - { name: node-id, in: path, required: true, schema: { type: string, format: uuid } }
    post:
      security: [{ bearer: [] }]
      requestBody:
        content:
          application/vnd.api+json:
            schema: { $ref: "#/components/schemas/Node~1Tree" }
      responses: { "201": { description: ok } }
components:
  securitySchemes:
    bearer: { type: http, scheme: bearer }
  schemas:
    Node/Tree:
      type: object
      properties:
        label: { type: [string, "null"], examples: ["root {{x}}"] }
        children: { type: array, items: { $ref: "#/components/schemas/Node~1Tree" } }
"##;
    let (d, text) = convert_text(&doc::read_yaml(spec).unwrap(), &OpenApiArgs::default());
    assert!(
        text.contains("path: /nodes/{{ node_id }}/children"),
        "{text}"
    );
    assert!(
        text.contains("node_id: \"3fa85f64-5717-4562-b3fc-2c963f66afa6\""),
        "{text}"
    );
    assert!(
        text.contains("Authorization: Bearer {{ token }}")
            && text.contains("token: ${API_TOKEN:-CHANGE_ME}"),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: application/vnd.api+json"),
        "{text}"
    );
    assert!(
        text.contains("label: root {{ random_choice({{) }}x}}")
            || text.contains("random_choice({{)"),
        "{text}"
    );
    assert!(text.contains("children: []"), "{text}");
    assert_eq!(
        d.tasks[1].name.as_deref(),
        Some("POST /nodes/{node-id}/children")
    );
    assert!(
        text.contains("path: /undeclared/{{ thing }}") && text.contains("thing: \"1\""),
        "{text}"
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("`thing`") && n.contains("not declared")),
        "{:?}",
        d.notes
    );
    assert!(
        d.notes.iter().any(|n| n.contains("TARGET_HOST")),
        "{:?}",
        d.notes
    );
    assert!(
        text.contains("host: ${TARGET_HOST:-http://localhost:8080}"),
        "{text}"
    );
}

#[test]
fn not_openapi_3_is_refused_with_the_reason() {
    let e = to_draft(
        &doc::read_yaml("swagger: \"2.0\"\npaths: {}").unwrap(),
        &OpenApiArgs::default(),
        "s.yaml",
        "s".into(),
    )
    .unwrap_err();
    assert!(
        e.contains("Swagger 2.0") && e.starts_with("s.yaml: "),
        "{e}"
    );
    let e = to_draft(
        &doc::read_yaml("a: 1").unwrap(),
        &OpenApiArgs::default(),
        "s.yaml",
        "s".into(),
    )
    .unwrap_err();
    assert!(e.contains("no `openapi:`"), "{e}");
    let bad = "openapi: 3.0.0\npaths:\n  /x:\n    get:\n      parameters: [{ $ref: '#/components/parameters/nope' }]\n";
    let e = to_draft(
        &doc::read_yaml(bad).unwrap(),
        &OpenApiArgs::default(),
        "s.yaml",
        "s".into(),
    )
    .unwrap_err();
    assert!(
        e.contains("paths./x.get") && e.contains("no `components`"),
        "{e}"
    );
    let e = doc::read_yaml("openapi: 3.0.0\npaths: [\n").unwrap_err();
    assert!(e.contains("line"), "{e}");
}
