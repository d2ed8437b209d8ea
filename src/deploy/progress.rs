//! What deploying is doing, as typed steps rather than text: the run loop forwards them
//! as events, `up` and `check` print them. Each step's `Display` is its line.

use std::fmt;

/// One step of bringing images and stacks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Pulling the upstream base image.
    Pulling(&'a str),
    /// Making the base image from Debian's packages (no registry answered).
    Bootstrapping,
    /// A line of an image build's output, and the service it builds for, if any.
    Building {
        /// The service.
        service: Option<&'a str>,
        /// The line.
        line: &'a str,
    },
    /// An image was built.
    Built(&'a str),
    /// An image is being copied to another engine.
    Copying {
        /// The image.
        image: &'a str,
        /// The other engine's URL.
        to: &'a str,
    },
    /// A variable changed in place in a running service (Gunicorn's workers).
    Live {
        /// The variable.
        var: &'a str,
        /// Its value before.
        from: u32,
        /// Its value now.
        to: u32,
        /// The service.
        service: &'a str,
    },
    /// A service's container is being created.
    Starting(&'a str),
    /// A service's container runs; readiness is awaited.
    Running(&'a str),
    /// A service is ready.
    Ready(&'a str),
    /// The racer container (the burst's sender beside the stack) is starting.
    StartingRacer(&'a str),
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Pulling(image) => write!(f, "pulling {image}"),
            Step::Bootstrapping => write!(
                f,
                "no registry: bootstrapping Debian trixie with mmdebstrap (about 30 s)"
            ),
            Step::Building {
                service: Some(s),
                line,
            } => write!(f, "building {s}: {line}"),
            Step::Building {
                service: None,
                line,
            } => write!(f, "{line}"),
            Step::Built(tag) => write!(f, "built {tag}"),
            Step::Copying { image, to } => write!(f, "copying image {image} to the engine at {to}"),
            Step::Live {
                var,
                from,
                to,
                service,
            } => write!(f, "{var} {from} -> {to} in {service}"),
            Step::Starting(s) => write!(f, "starting {s}"),
            Step::Running(s) => write!(f, "running {s}"),
            Step::Ready(s) => write!(f, "ready {s}"),
            Step::StartingRacer(name) => write!(f, "starting the racer {name}"),
        }
    }
}

/// Where the steps go.
pub type Progress<'p> = dyn FnMut(Step<'_>) + 'p;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_lines() {
        let live = Step::Live {
            var: "workers",
            from: 1,
            to: 4,
            service: "app",
        };
        assert_eq!(live.to_string(), "workers 1 -> 4 in app");
        let line = "Step 3/9 : RUN apt-get install";
        let built_for = Step::Building {
            service: Some("app"),
            line,
        };
        assert_eq!(built_for.to_string(), format!("building app: {line}"));
        let bare = Step::Building {
            service: None,
            line,
        };
        assert_eq!(bare.to_string(), line);
    }
}
