@echo off
rem 4.2) data_src util faceset metadata restore: put the saved metadata back into the edited faces
rem of data_src/aligned.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --restore-faceset-metadata ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
