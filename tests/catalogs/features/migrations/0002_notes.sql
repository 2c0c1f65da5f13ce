-- features 0002: a table of the target's own, and a trigger (its body holds semicolons).
CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL) STRICT;

CREATE TRIGGER notes_body_trimmed AFTER INSERT ON notes
WHEN NEW.body <> trim(NEW.body)
BEGIN
    UPDATE notes SET body = trim(NEW.body) WHERE id = NEW.id;
END;
